#include "server/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace qcoder::server {

namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Reads from fd into buf until `done(buf)` or the deadline; false on EOF, error, timeout or
// when `wake` becomes readable while buf is still empty (shutdown of an idle connection).
template <typename Done>
bool read_until(int fd, int wake, std::string& buf, int64_t deadline_ms, Done done) {
  char tmp[16384];
  while (!done(buf)) {
    const int64_t left = deadline_ms - now_ms();
    if (left <= 0) return false;
    pollfd p[2] = {{fd, POLLIN, 0}, {wake, POLLIN, 0}};
    const int n = ::poll(p, buf.empty() ? 2 : 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n < 0 && errno != EINTR) return false;
    if (n <= 0) continue;
    if (buf.empty() && (p[1].revents & POLLIN)) return false;
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    const ssize_t r = ::recv(fd, tmp, sizeof(tmp), 0);
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    buf.append(tmp, static_cast<size_t>(r));
  }
  return true;
}

void send_simple(int fd, int status, std::string_view message) {
  const std::string body = std::string("{\"error\":{\"message\":\"") + std::string(message) +
                           "\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}";
  ResponseWriter w(fd, false);
  w.close_after();
  w.send(status, "application/json", body);
}

}  // namespace

const char* status_reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

// ---- ResponseWriter ----

bool ResponseWriter::write_all(std::string_view data) {
  if (failed_) return false;
  const int64_t deadline = now_ms() + 30000;
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      pollfd p{fd_, POLLOUT, 0};
      const int64_t left = deadline - now_ms();
      if (left <= 0 || (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR)) break;
      if (p.revents & (POLLERR | POLLHUP)) break;
      continue;
    }
    break;
  }
  if (!data.empty()) failed_ = close_ = true;
  return !failed_;
}

std::string ResponseWriter::head(int status, std::string_view content_type, const Headers& extra,
                                 int64_t length) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + status_reason(status) + "\r\n";
  if (!content_type.empty()) h += "Content-Type: " + std::string(content_type) + "\r\n";
  if (length >= 0)
    h += "Content-Length: " + std::to_string(length) + "\r\n";
  else
    h += "Transfer-Encoding: chunked\r\n";
  h += close_ ? "Connection: close\r\n" : "Connection: keep-alive\r\n";
  for (const auto& [k, v] : extra) h += k + ": " + v + "\r\n";
  h += "\r\n";
  return h;
}

void ResponseWriter::send(int status, std::string_view content_type, std::string_view body,
                          const Headers& extra) {
  if (responded_) return;
  responded_ = true;
  status_ = status;
  std::string out = head(status, content_type, extra, static_cast<int64_t>(body.size()));
  if (!head_only_) out += body;
  write_all(out);
}

bool ResponseWriter::begin_stream(int status, std::string_view content_type, const Headers& extra) {
  if (responded_) return false;
  responded_ = streaming_ = true;
  status_ = status;
  return write_all(head(status, content_type, extra, -1));
}

bool ResponseWriter::write(std::string_view data) {
  if (!streaming_ || data.empty()) return !failed_;
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  std::string chunk = size;
  chunk.append(data);
  chunk += "\r\n";
  return write_all(chunk);
}

void ResponseWriter::end_stream() {
  if (!streaming_) return;
  streaming_ = false;
  write_all("0\r\n\r\n");
}

ResponseWriter::Wait ResponseWriter::wait(int fd, int timeout_ms) {
  // POLLRDHUP: the client closed (or half-closed) its side; a pipelined next request only
  // raises POLLIN, which is not asked for.
  pollfd p[2] = {{fd_, POLLRDHUP, 0}, {fd, POLLIN, 0}};
  const int n = ::poll(p, fd >= 0 ? 2 : 1, timeout_ms);
  if (n <= 0) return Wait::kTimeout;
  if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) return Wait::kDisconnected;
  if (fd >= 0 && (p[1].revents & POLLIN)) return Wait::kReady;
  return Wait::kTimeout;
}

bool ResponseWriter::client_gone() {
  pollfd p{fd_, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

// ---- HttpServer ----

HttpServer::HttpServer(HttpOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(options_.port);
  if (int rc = ::getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &res); rc != 0)
    throw Error("cannot resolve host \"" + options_.host + "\": " + gai_strerror(rc));
  std::string why = "no address";
  for (addrinfo* a = res; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 512) == 0) {
      listen_fd_ = fd;
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
      break;
    }
    why = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (listen_fd_ < 0) throw Error("cannot listen on " + options_.host + ":" + port + ": " + why);
  if (::pipe2(wake_, O_CLOEXEC) != 0) throw Error(std::string("pipe: ") + std::strerror(errno));
  acceptor_ = std::thread([this] { accept_loop(); });
}

void HttpServer::accept_loop() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents & POLLIN) break;
    if (!(p[0].revents & POLLIN)) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET)
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof(host));
    else if (ss.ss_family == AF_INET6)
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host, sizeof(host));
    if (connections_.load() >= options_.max_connections) {
      send_simple(fd, 503, "too many connections");
      ::close(fd);
      continue;
    }
    ++connections_;
    std::thread([this, fd, peer = std::string(host)] { serve(fd, peer); }).detach();
  }
}

void HttpServer::serve(int fd, std::string peer) {
  std::string buf;
  for (;;) {
    // Head: wait for the next request (idle timeout), then for the rest of it (io timeout).
    const size_t max_head = options_.max_header_bytes;
    bool too_big = false;
    auto head_done = [&](const std::string& b) {
      if (b.find("\r\n\r\n") != std::string::npos) return true;
      if (b.size() > max_head) return too_big = true;
      return false;
    };
    if (!read_until(fd, wake_[0], buf,
                    now_ms() + (buf.empty() ? options_.idle_timeout_ms : options_.io_timeout_ms),
                    head_done))
      break;
    if (too_big) {
      send_simple(fd, 431, "request head too large");
      break;
    }
    const size_t head_end = buf.find("\r\n\r\n");
    HttpRequest req;
    req.peer = peer;
    const std::string_view headv(buf.data(), head_end);
    size_t line_end = headv.find("\r\n");
    const std::string_view request_line = headv.substr(0, line_end);
    const size_t sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) {
      send_simple(fd, 400, "malformed request line");
      break;
    }
    req.method = std::string(request_line.substr(0, sp1));
    req.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
    const std::string_view version = request_line.substr(sp2 + 1);
    if (version != "HTTP/1.1" && version != "HTTP/1.0") {
      send_simple(fd, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
      break;
    }
    const size_t q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    bool bad_header = false;
    while (line_end != std::string_view::npos && line_end < headv.size()) {
      const size_t start = line_end + 2;
      line_end = headv.find("\r\n", start);
      const std::string_view line =
          headv.substr(start, line_end == std::string_view::npos ? headv.npos : line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        bad_header = true;
        break;
      }
      req.headers.emplace_back(lower(trim(line.substr(0, colon))),
                               std::string(trim(line.substr(colon + 1))));
    }
    if (bad_header) {
      send_simple(fd, 400, "malformed header line");
      break;
    }
    bool keep_alive = version == "HTTP/1.1";
    if (const std::string* c = req.header("connection")) {
      const std::string v = lower(*c);
      if (v.find("close") != std::string::npos) keep_alive = false;
      if (v.find("keep-alive") != std::string::npos) keep_alive = true;
    }
    if (req.header("transfer-encoding")) {
      send_simple(fd, 411, "chunked request bodies are not supported; send Content-Length");
      break;
    }
    size_t length = 0;
    if (const std::string* cl = req.header("content-length")) {
      if (cl->empty() || cl->size() > 18 || !std::all_of(cl->begin(), cl->end(), ::isdigit)) {
        send_simple(fd, 400, "bad Content-Length");
        break;
      }
      length = std::stoull(*cl);
    }
    if (length > options_.max_body_bytes) {
      send_simple(fd, 413,
                  "request body of " + std::to_string(length) + " bytes exceeds the limit of " +
                      std::to_string(options_.max_body_bytes));
      // Lingering close: read what the client is still sending (bounded), so that it gets to
      // read the 413 instead of a reset.
      size_t drained = buf.size() - (head_end + 4);
      const int64_t until = now_ms() + 5000;
      char tmp[65536];
      while (drained < length && drained < (64u << 20) && now_ms() < until) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        const ssize_t r = ::recv(fd, tmp, sizeof(tmp), 0);
        if (r <= 0) break;
        drained += static_cast<size_t>(r);
      }
      break;
    }
    buf.erase(0, head_end + 4);
    if (length > buf.size()) {
      if (const std::string* e = req.header("expect"); e && lower(*e) == "100-continue") {
        const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
        ::send(fd, cont.data(), cont.size(), MSG_NOSIGNAL);
      }
      if (!read_until(fd, -1, buf, now_ms() + options_.io_timeout_ms,
                      [&](const std::string& b) { return b.size() >= length; }))
        break;
    }
    req.body = buf.substr(0, length);
    buf.erase(0, length);

    ResponseWriter w(fd, req.method == "HEAD");
    w.set_keep_alive(keep_alive && !stopping_.load());
    try {
      handler_(req, w);
    } catch (const std::exception& e) {
      QCODER_WARN("http: handler failed on " << req.method << " " << req.path << ": " << e.what());
      if (!w.responded()) {
        w.close_after();
        w.send(500, "application/json",
               "{\"error\":{\"message\":\"internal "
               "error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
      }
    }
    if (!w.responded())
      w.send(500, "application/json",
             "{\"error\":{\"message\":\"no "
             "response\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
    if (w.closing() || w.failed() || stopping_.load()) break;
  }
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
  // Notify under the lock: once it is released this thread no longer touches the server,
  // which stop() may then destroy.
  std::lock_guard<std::mutex> lock(mu_);
  --connections_;
  closed_cv_.notify_all();
}

void HttpServer::stop_accepting() {
  if (!stopping_.exchange(true) && wake_[1] >= 0) {
    const char c = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_[1], &c, 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

bool HttpServer::wait_closed(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return closed_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                             [&] { return connections_.load() == 0; });
}

void HttpServer::stop() {
  stop_accepting();
  {
    std::unique_lock<std::mutex> lock(mu_);
    closed_cv_.wait(lock, [&] { return connections_.load() == 0; });
  }
  for (int& f : wake_)
    if (f >= 0) {
      ::close(f);
      f = -1;
    }
}

}  // namespace qcoder::server
