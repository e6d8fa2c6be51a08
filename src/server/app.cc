#include "server/app.h"

#include <chrono>

#include "core/log.h"
#include "server/api_error.h"

namespace qcoder::server {

using json = nlohmann::ordered_json;
using ojson = nlohmann::ordered_json;

namespace {

void send_json(ResponseWriter& w, int status, const ojson& j) {
  w.send(status, "application/json", j.dump(-1, ' ', false, json::error_handler_t::replace));
}

void send_error(ResponseWriter& w, const ApiError& e) {
  if (e.status() == 413 || e.status() == 400)
    w.close_after();  // the body may not have been read whole
  w.send(e.status(), "application/json",
         e.body().dump(-1, ' ', false, json::error_handler_t::replace));
}

json parse_object(const HttpRequest& req) {
  json b = json::parse(req.body, nullptr, false);
  if (b.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  if (!b.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return b;
}

bool equal_time_constant(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i)
    diff |= static_cast<unsigned char>(a[i % (a.size() ? a.size() : 1)] ^ b[i]);
  return diff == 0 && !a.empty();
}

}  // namespace

ServerApp::ServerApp(AppOptions options) : options_(std::move(options)) {}

void ServerApp::set_ready(engine::Engine& engine, const TextBackend& text,
                          RequestDefaults defaults) {
  ctx_ = std::make_unique<ServeContext>(
      ServeContext{engine, text, std::move(defaults), options_.model_name, metrics_});
  ready_.store(true);
}

bool ServerApp::authorized(const HttpRequest& req) const {
  if (options_.api_key.empty()) return true;
  const std::string* h = req.header("authorization");
  if (!h || h->rfind("Bearer ", 0) != 0) return false;
  return equal_time_constant(h->substr(7), options_.api_key);
}

void ServerApp::handle(const HttpRequest& req, ResponseWriter& w) {
  std::string endpoint = "other";
  try {
    route(req, w, endpoint);
  } catch (const ApiError& e) {
    if (w.responded()) {
      QCODER_WARN("http: " << req.method << " " << req.path << ": " << e.what()
                           << " (after the response began)");
    } else {
      send_error(w, e);
    }
  } catch (const std::bad_alloc&) {
    if (!w.responded()) send_error(w, ApiError(503, "out of memory"));
  } catch (const std::exception& e) {
    QCODER_WARN("http: " << req.method << " " << req.path << ": internal error: " << e.what());
    if (!w.responded()) send_error(w, ApiError(500, std::string("internal error: ") + e.what()));
  }
  if (w.responded()) metrics_.count_request(endpoint, w.status());
}

void ServerApp::route(const HttpRequest& req, ResponseWriter& w, std::string& endpoint) {
  const std::string& p = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD", post = req.method == "POST";
  auto need = [&](bool ok) {
    if (!ok) throw ApiError(405, "method " + req.method + " is not allowed on " + p);
  };
  if (req.method == "OPTIONS") {
    w.send(204, "", "", {{"Allow", "GET, POST, OPTIONS"}});
    return;
  }
  if (p == "/" || p == "/index.html") {
    endpoint = "/";
    need(get);
    w.send(200, "text/html; charset=utf-8", kWebPage);
    return;
  }
  if (p == "/health") {
    endpoint = "/health";
    need(get);
    if (!ready_.load()) return send_json(w, 503, {{"status", "loading"}});
    return send_json(w, draining_.load() ? 503 : 200,
                     {{"status", draining_.load() ? "shutting down" : "ok"}});
  }
  if (!authorized(req))
    throw ApiError(401, "Incorrect API key provided. Pass it as 'Authorization: Bearer KEY'.", "",
                   "invalid_api_key", "invalid_request_error");
  if (p == "/metrics") {
    endpoint = "/metrics";
    need(get);
    w.send(200, "text/plain; version=0.0.4",
           metrics_.render(ready_.load() ? &ctx_->engine : nullptr));
    return;
  }
  const bool known = p == "/v1/models" || p.rfind("/v1/models/", 0) == 0 ||
                     p == "/v1/chat/completions" || p == "/chat/completions" ||
                     p == "/v1/completions" || p == "/completions" || p == "/tokenize" ||
                     p == "/detokenize";
  if (!known) throw ApiError(404, "no such endpoint: " + req.method + " " + p, "", "not_found");
  if (!ready_.load()) throw ApiError(503, "the model is still loading", "", "model_loading");
  const ServeContext& ctx = *ctx_;

  if (p == "/v1/models" || p.rfind("/v1/models/", 0) == 0) {
    endpoint = "/v1/models";
    need(get);
    ojson m;
    m["id"] = options_.model_name;
    m["object"] = "model";
    m["created"] = 0;
    m["owned_by"] = "qcoder";
    m["context_length"] = ctx.engine.options().ctx_size;
    m["max_model_len"] = ctx.engine.options().ctx_size;
    if (p == "/v1/models")
      return send_json(w, 200, {{"object", "list"}, {"data", ojson::array({m})}});
    if (p.substr(11) != options_.model_name)
      throw ApiError(404, "no model named " + p.substr(11), "model", "model_not_found");
    return send_json(w, 200, m);
  }
  if (p == "/tokenize") {
    endpoint = "/tokenize";
    need(post);
    const json b = parse_object(req);
    if (!b.contains("content") || !b["content"].is_string())
      throw bad_param("content", "'content' must be a string");
    bool special = true;
    if (b.contains("add_special")) {
      if (!b["add_special"].is_boolean())
        throw bad_param("add_special", "'add_special' must be a boolean");
      special = b["add_special"].get<bool>();
    }
    // Qwen adds no BOS; add_special only decides whether special-token text is parsed.
    return send_json(w, 200,
                     {{"tokens", ctx.text.encode(b["content"].get<std::string>(), special)}});
  }
  if (p == "/detokenize") {
    endpoint = "/detokenize";
    need(post);
    const json b = parse_object(req);
    if (!b.contains("tokens") || !b["tokens"].is_array())
      throw bad_param("tokens", "'tokens' must be an array of token ids");
    std::vector<int32_t> ids;
    for (const json& t : b["tokens"]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          t.get<int64_t>() >= ctx.text.vocab_size())
        throw bad_param("tokens", "token ids must be integers in [0, " +
                                      std::to_string(ctx.text.vocab_size()) + ")");
      ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    return send_json(w, 200, {{"content", ctx.text.decode(ids, false)}});
  }
  // Generation.
  need(post);
  const bool chat = p == "/v1/chat/completions" || p == "/chat/completions";
  endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
  if (draining_.load()) throw ApiError(503, "the server is shutting down", "", "shutting_down");
  struct InFlight {
    std::atomic<int>& n;
    explicit InFlight(std::atomic<int>& c) : n(c) { ++n; }
    ~InFlight() { --n; }
  } guard(in_flight_);
  if (chat)
    handle_chat_completions(ctx, req, w);
  else
    handle_completions(ctx, req, w);
}

}  // namespace qcoder::server
