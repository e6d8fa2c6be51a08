// POST /v1/chat/completions and /v1/completions: a request is parsed, its prompt rendered and
// tokenized, one engine request is submitted per choice, and the tokens coming back are turned
// into an OpenAI response, whole or streamed as server-sent events exactly as OpenAI sends
// them. The client going away cancels the engine requests at once.
#pragma once

#include <string>

#include "engine/engine.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/openai_params.h"
#include "server/text_backend.h"

namespace qcoder::server {

struct ServeContext {
  engine::Engine& engine;
  const TextBackend& text;
  RequestDefaults defaults;
  std::string model_name;
  Metrics& metrics;
};

// Both throw ApiError for anything the client must fix; once streaming has begun, errors are
// sent as an SSE error event instead.
void handle_chat_completions(const ServeContext& ctx, const HttpRequest& req, ResponseWriter& w);
void handle_completions(const ServeContext& ctx, const HttpRequest& req, ResponseWriter& w);

}  // namespace qcoder::server
