// The server in-process over real sockets on 127.0.0.1: OpenAI response shapes, SSE framing,
// HTTP errors, keep-alive, authentication, and cancellation when the client hangs up.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "engine/engine_fixture.h"
#include "server/app.h"
#include "server/fake_text_backend.h"

namespace qcoder::server {
namespace {

using json = nlohmann::ordered_json;

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

void send_all(int fd, const std::string& s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  return out;
}

struct Response {
  int status = 0;
  std::string head, body;
};

Response parse(const std::string& raw) {
  Response r;
  const size_t he = raw.find("\r\n\r\n");
  if (he == std::string::npos) return r;
  r.head = raw.substr(0, he);
  r.status = std::stoi(raw.substr(9, 3));
  std::string rest = raw.substr(he + 4);
  if (r.head.find("Transfer-Encoding: chunked") != std::string::npos) {
    size_t p = 0;
    for (;;) {
      const size_t eol = rest.find("\r\n", p);
      const size_t n = std::stoul(rest.substr(p, eol - p), nullptr, 16);
      if (n == 0) break;
      r.body += rest.substr(eol + 2, n);
      p = eol + 2 + n + 2;
    }
  } else {
    r.body = rest;
  }
  return r;
}

std::string request(const std::string& method, const std::string& path, const std::string& body,
                    const std::string& extra = "") {
  return method + " " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(testing::engine_fixture_dir());
    engine::EngineOptions eo;
    eo.slots = 4;
    eo.threads = 2;
    eo.ctx_size = 512;
    eo.kv_budget_bytes = 32u << 20;
    engine_ = std::make_unique<engine::Engine>(*model_, eo);
    AppOptions ao;
    ao.model_name = "fixture";
    ao.api_key = key_;
    app_ = std::make_unique<ServerApp>(ao);
    RequestDefaults d;
    d.vocab_size = 512;
    app_->set_ready(*engine_, text_, d);
    HttpOptions ho;
    ho.port = 0;
    ho.max_body_bytes = 4096;
    http_ = std::make_unique<HttpServer>(
        ho, [this](const HttpRequest& r, ResponseWriter& w) { app_->handle(r, w); });
    http_->start();
  }
  void TearDown() override {
    http_->stop();
    engine_->shutdown();
  }
  Response call(const std::string& method, const std::string& path, const std::string& body = "",
                const std::string& extra = "Authorization: Bearer k\r\n") {
    const int fd = connect_to(http_->port());
    send_all(fd, request(method, path, body, extra));
    Response r = parse(read_all(fd));
    ::close(fd);
    return r;
  }
  std::string key_ = "k";
  testing::FakeTextBackend text_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<ServerApp> app_;
  std::unique_ptr<HttpServer> http_;
};

const std::string kChat =
    R"({"messages":[{"role":"user","content":"hello"}],"max_tokens":6,"temperature":0)";

TEST_F(HttpServerTest, ChatWholeAndStreamedAgree) {
  Response r = call("POST", "/v1/chat/completions", kChat + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "fixture");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 6);
  EXPECT_EQ(j["usage"]["prompt_tokens"],
            static_cast<int>(std::string("user: hello\nassistant: ").size()));
  const std::string text = j["choices"][0]["message"]["content"];

  Response s = call("POST", "/v1/chat/completions",
                    kChat + R"(,"stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_EQ(s.status, 200);
  EXPECT_NE(s.head.find("Content-Type: text/event-stream"), std::string::npos);
  std::string streamed;
  std::vector<json> events;
  size_t p = 0;
  for (size_t e; (e = s.body.find("\n\n", p)) != std::string::npos; p = e + 2) {
    const std::string ev = s.body.substr(p, e - p);
    ASSERT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    if (ev == "data: [DONE]") {
      EXPECT_EQ(e + 2, s.body.size());
      break;
    }
    events.push_back(json::parse(ev.substr(6)));
  }
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  for (const json& ev : events) {
    EXPECT_EQ(ev["object"], "chat.completion.chunk");
    if (!ev["choices"].empty()) streamed += ev["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(events.back()["choices"].empty());
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 6);
  EXPECT_GT(events.back()["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
}

TEST_F(HttpServerTest, HangingUpCancelsTheGeneration) {
  const int fd = connect_to(http_->port());
  send_all(
      fd,
      request("POST", "/v1/chat/completions",
              R"({"messages":[{"role":"user","content":"long"}],"max_tokens":400,"stream":true})",
              "Authorization: Bearer k\r\n"));
  std::string got;
  char buf[1024];
  while (got.find("content") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  auto disconnects = [&] {
    return app_->metrics().render(engine_.get()).find("qcoder_client_disconnects_total 1") !=
           std::string::npos;
  };
  for (int i = 0; i < 300 && (engine_->stats().running > 0 || !disconnects()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const engine::EngineStats st = engine_->stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_LT(st.generated_tokens, 400);
  EXPECT_EQ(st.kv_blocks_used, st.prefix_cache_blocks);
  EXPECT_TRUE(disconnects());
}

TEST_F(HttpServerTest, ErrorsAndLimits) {
  EXPECT_EQ(call("POST", "/v1/chat/completions", "{oops").status, 400);
  EXPECT_EQ(call("POST", "/v1/chat/completions", kChat + "}", "").status, 401);
  EXPECT_EQ(call("POST", "/v1/chat/completions", kChat + "}", "Authorization: Bearer x\r\n").status,
            401);
  EXPECT_EQ(call("GET", "/health", "", "").status, 200);
  EXPECT_EQ(call("GET", "/nope").status, 404);
  EXPECT_EQ(call("DELETE", "/v1/models").status, 405);
  const Response big = call("POST", "/v1/chat/completions", std::string(5000, ' '));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(json::parse(big.body)["error"]["type"], "invalid_request_error");
  const int fd = connect_to(http_->port());
  send_all(fd, "NONSENSE\r\n\r\n");
  EXPECT_EQ(parse(read_all(fd)).status, 400);
  ::close(fd);
  const Response m = call("GET", "/v1/models");
  EXPECT_EQ(json::parse(m.body)["data"][0]["context_length"], 512);
  EXPECT_EQ(call("POST", "/tokenize", R"({"content":"ab"})").body, R"({"tokens":[97,98]})");
  EXPECT_EQ(call("POST", "/detokenize", R"({"tokens":[97,98]})").body, R"({"content":"ab"})");
}

TEST_F(HttpServerTest, KeepAliveAndExpectContinue) {
  const int fd = connect_to(http_->port());
  const std::string body = R"({"content":"x"})";
  const std::string req =
      "POST /tokenize HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer k\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n";
  send_all(fd, req + "\r\n" + body);
  send_all(fd, req + "Expect: 100-continue\r\n\r\n");
  std::string got;
  char buf[4096];
  while (got.find("100 Continue") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  send_all(fd, body);
  send_all(fd, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  got += read_all(fd);
  ::close(fd);
  size_t oks = 0;
  for (size_t p = 0; (p = got.find("HTTP/1.1 200 OK", p)) != std::string::npos; ++p) ++oks;
  EXPECT_EQ(oks, 3u) << got;
}

}  // namespace
}  // namespace qcoder::server
