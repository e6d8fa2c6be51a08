// One generation request as the engine sees it (token ids in, token ids out) and the state it
// shares between the thread that submitted it and the scheduler loop.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "sampling/sampler.h"

namespace qcoder::engine {

using Clock = std::chrono::steady_clock;

struct GenerationParams {
  std::vector<int32_t> prompt;  // at least one token
  SamplingParams sampling;
  int64_t max_tokens = -1;           // generated tokens; -1 = until the context limit
  std::vector<int32_t> stop_tokens;  // end the sequence when sampled (not reported as tokens)
  int top_logprobs = -1;             // -1 = no logprobs; else the sampled token's and this many
  bool cache_prompt = true;          // look the prompt up in (and add it to) the prefix cache
};

struct TokenEvent {
  int32_t token = 0;
  float logprob = 0.0f;                        // when top_logprobs >= 0
  std::vector<std::pair<int32_t, float>> top;  // the top_logprobs most likely, best first
  Clock::time_point time;                      // when it was sampled
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };

// Shared by the consumer (an HTTP thread) and the producer (the scheduler).
class RequestState {
 public:
  RequestState();
  ~RequestState();
  RequestState(const RequestState&) = delete;
  RequestState& operator=(const RequestState&) = delete;

  // ---- consumer ----
  // Appends the events produced so far to out; returns true once the request has finished
  // and every event has been taken.
  bool take(std::vector<TokenEvent>& out);
  // Waits until there is something to take (or timeout); true if there is.
  bool wait_for(std::chrono::milliseconds timeout);
  // Readable (an eventfd) whenever there is something to take: lets a consumer poll() it next
  // to its socket. take() resets it.
  int notify_fd() const { return event_fd_; }
  // Asks the scheduler to stop this request and free its memory at its next step.
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  // Valid once take() returned true.
  FinishReason finish_reason() const;
  std::string error() const;
  int64_t prompt_tokens() const { return prompt_tokens_.load(); }
  int64_t cached_tokens() const {
    return cached_tokens_.load();
  }  // prompt tokens served by the prefix cache
  Clock::time_point submitted() const { return submitted_; }

  // ---- producer ----
  void push(TokenEvent event);
  void finish(FinishReason reason, std::string error = {});
  void set_prompt_stats(int64_t prompt, int64_t cached) {
    prompt_tokens_.store(prompt);
    cached_tokens_.store(cached);
  }

 private:
  void signal();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TokenEvent> events_;
  FinishReason reason_ = FinishReason::kNone;
  std::string error_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int64_t> prompt_tokens_{0}, cached_tokens_{0};
  Clock::time_point submitted_;
  int event_fd_ = -1;
};

}  // namespace qcoder::engine
