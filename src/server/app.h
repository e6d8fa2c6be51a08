// The HTTP API of `qcoder serve`: routing, the optional bearer key, readiness, and the small
// endpoints (/health, /v1/models, /metrics, /tokenize, /detokenize, the chat page at /). The
// generation endpoints live in openai_handlers.cc.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/openai_handlers.h"
#include "server/text_backend.h"

namespace qcoder::server {

struct AppOptions {
  std::string api_key;     // empty = no authentication
  std::string model_name;  // what /v1/models lists and responses carry
};

class ServerApp {
 public:
  explicit ServerApp(AppOptions options);

  // Until this is called /health answers 503 and the API 503 ("loading").
  void set_ready(engine::Engine& engine, const TextBackend& text, RequestDefaults defaults);
  // After SIGTERM: generation requests get 503 while the ones in flight finish.
  void set_draining() { draining_.store(true); }
  // Requests being generated right now.
  int in_flight() const { return in_flight_.load(); }

  void handle(const HttpRequest& req, ResponseWriter& w);
  Metrics& metrics() { return metrics_; }

 private:
  void route(const HttpRequest& req, ResponseWriter& w, std::string& endpoint);
  bool authorized(const HttpRequest& req) const;

  AppOptions options_;
  Metrics metrics_;
  std::unique_ptr<ServeContext> ctx_;
  std::atomic<bool> ready_{false}, draining_{false};
  std::atomic<int> in_flight_{0};
};

// The chat page (web/index.html, embedded at build time).
extern const char* const kWebPage;

}  // namespace qcoder::server
