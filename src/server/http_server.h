// A small HTTP/1.1 server (POSIX sockets, one thread per connection, bounded), enough for an
// OpenAI-style API: keep-alive, Content-Length bodies with a size limit (413), Expect:
// 100-continue, whole or chunked streamed responses, and disconnect detection while a handler
// waits (so generation stops when the client goes away).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace qcoder::server {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method, target, path, query;  // target = path[?query]
  Headers headers;                          // names in lower case
  std::string body;
  std::string peer;  // client address, for logs
  const std::string* header(std::string_view lower_name) const;
};

class ResponseWriter {
 public:
  ResponseWriter(int fd, bool head_only) : fd_(fd), head_only_(head_only) {}

  // A whole response with Content-Length.
  void send(int status, std::string_view content_type, std::string_view body,
            const Headers& extra = {});
  // A streamed response (chunked transfer encoding): begin once, then write pieces; both
  // return false once the client is gone. end_stream() sends the last chunk.
  bool begin_stream(int status, std::string_view content_type, const Headers& extra = {});
  bool write(std::string_view data);
  void end_stream();

  enum class Wait { kReady, kDisconnected, kTimeout };
  // Waits until `fd` is readable (kReady), the client hangs up (kDisconnected) or timeout_ms.
  Wait wait(int fd, int timeout_ms);
  bool client_gone();  // without waiting

  bool responded() const { return responded_; }
  bool failed() const { return failed_; }  // a write failed: the connection is dropped after
  int status() const { return status_; }
  void close_after() { close_ = true; }
  bool closing() const { return close_; }
  void set_keep_alive(bool keep) { close_ = !keep; }

 private:
  bool write_all(std::string_view data);
  std::string head(int status, std::string_view content_type, const Headers& extra, int64_t length);

  int fd_;
  bool head_only_;
  bool responded_ = false, streaming_ = false, failed_ = false, close_ = false;
  int status_ = 0;
};

using Handler = std::function<void(const HttpRequest&, ResponseWriter&)>;

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                      // 0 = any free port (see HttpServer::port())
  size_t max_body_bytes = 8u << 20;     // larger bodies get 413
  size_t max_header_bytes = 64u << 10;  // larger heads get 431
  int max_connections = 256;            // beyond: 503 and close
  int idle_timeout_ms = 30000;          // keep-alive connections idle this long are closed
  int io_timeout_ms = 30000;            // a stalled read or write of one request
};

class HttpServer {
 public:
  HttpServer(HttpOptions options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens (throws qcoder::Error) and starts accepting.
  void start();
  int port() const { return port_; }
  // Stops accepting; connections close once their current request is answered.
  void stop_accepting();
  // Waits up to timeout_ms for every connection to close; true if they did.
  bool wait_closed(int timeout_ms);
  int connections() const { return connections_.load(); }
  // stop_accepting() and waits for every connection thread to end.
  void stop();

 private:
  void accept_loop();
  void serve(int fd, std::string peer);

  HttpOptions options_;
  Handler handler_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe: readable once stop_accepting() has run
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::condition_variable closed_cv_;
  std::thread acceptor_;
};

// "Bad Request" for 400, and so on.
const char* status_reason(int status);

}  // namespace qcoder::server
