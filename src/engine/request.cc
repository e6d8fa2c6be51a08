#include "engine/request.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace qcoder::engine {

RequestState::RequestState() : submitted_(Clock::now()) {
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) throw Error(std::string("eventfd: ") + std::strerror(errno));
}

RequestState::~RequestState() {
  if (event_fd_ >= 0) ::close(event_fd_);
}

void RequestState::signal() {
  const uint64_t one = 1;
  // A full counter (never in practice) still leaves the fd readable, which is all we need.
  [[maybe_unused]] ssize_t w = ::write(event_fd_, &one, sizeof(one));
  cv_.notify_all();
}

bool RequestState::take(std::vector<TokenEvent>& out) {
  uint64_t drained;
  [[maybe_unused]] ssize_t r = ::read(event_fd_, &drained, sizeof(drained));
  std::lock_guard<std::mutex> lock(mu_);
  for (TokenEvent& e : events_) out.push_back(std::move(e));
  events_.clear();
  return reason_ != FinishReason::kNone;
}

bool RequestState::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout,
                      [&] { return !events_.empty() || reason_ != FinishReason::kNone; });
}

FinishReason RequestState::finish_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reason_;
}

std::string RequestState::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void RequestState::push(TokenEvent event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
  }
  signal();
}

void RequestState::finish(FinishReason reason, std::string error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (reason_ != FinishReason::kNone) return;
    reason_ = reason;
    error_ = std::move(error);
  }
  signal();
}

}  // namespace qcoder::engine
