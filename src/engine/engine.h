// The engine: one scheduler thread that owns the model's forward pass and runs every request
// through it with continuous batching.
//
// Each step builds one batch: every sequence that is decoding contributes its one new token,
// then sequences still reading their prompt contribute chunks (at most prefill_chunk tokens
// each, at most batch_tokens in all), so a long prompt is spread over several steps and never
// stalls the streams beside it. New requests join between steps (up to `slots` at once);
// finished or cancelled ones leave and free their KV blocks at once. KV memory is paged
// (engine/block_pool.h) and the prompt's longest cached prefix is reused (engine/prefix_cache.h).
// When the pool runs dry the newest sequence is preempted: its blocks are freed and it is
// recomputed later from its tokens, which gives the same result since the forward pass is
// batch-invariant.
//
// Threads: submit(), stats() and RequestState's consumer side may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/kv_format.h"
#include "engine/forward_backend.h"
#include "engine/request.h"
#include "model/model.h"

namespace qcoder::engine {

struct EngineOptions {
  int slots = 4;                          // sequences in the running batch at most
  int max_queue = 64;                     // waiting requests at most (submit refuses beyond)
  int64_t ctx_size = 0;                   // tokens per sequence at most; 0 = the model's maximum
  int64_t batch_tokens = 512;             // tokens per forward step at most (>= slots)
  int64_t prefill_chunk = 256;            // prompt tokens per sequence per step at most
  int64_t block_tokens = 16;              // positions per KV block (a power of two)
  uint64_t kv_budget_bytes = 1ull << 30;  // the whole KV pool, in bytes of kv_format
  KvFormat kv_format;                     // KV element format (bf16 by default)
  uint64_t prefix_cache_bytes = 512ull << 20;  // the part the prefix cache may keep
  int threads = 0;                             // forward-pass threads; 0 = all cores
};

// Thrown by submit() when the waiting queue is full (HTTP 429).
class QueueFull : public Error {
 public:
  using Error::Error;
};

struct EngineStats {
  int64_t running = 0, waiting = 0, max_running = 0;
  int64_t steps = 0, prompt_tokens = 0, computed_prompt_tokens = 0, generated_tokens = 0;
  int64_t cache_queries = 0, cache_hits = 0, cached_tokens = 0, preemptions = 0;
  double forward_seconds = 0,
         sampling_seconds = 0;  // scheduler time in Model::forward, in samplers
  int64_t kv_blocks_used = 0, kv_blocks_total = 0, prefix_cache_blocks = 0;
  uint64_t kv_block_bytes = 0;
  std::vector<uint64_t> batch_size_counts;  // [b] = steps whose running batch had b sequences
};

class Engine {
 public:
  Engine(const Model& model, EngineOptions options);
  // The same over any backend (engine/forward_backend.h), e.g. a model spread over MPI ranks.
  Engine(std::unique_ptr<ForwardBackend> backend, EngineOptions options);
  ~Engine();  // cancels what is left and joins the scheduler
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Throws qcoder::Error for a request that can never run (empty prompt,
  // prompt at or past the context limit or bigger than the KV budget, bad sampling
  // parameters) and QueueFull when the queue is full.
  std::shared_ptr<RequestState> submit(GenerationParams params);
  EngineStats stats() const;
  const EngineOptions& options() const { return options_; }
  // This process's model (under MPI: rank 0's share).
  const Model& model() const { return backend_->local_model(); }
  // Cancels every request and stops the scheduler (also done by the destructor).
  void shutdown();

 private:
  struct Sequence;
  void loop();
  void admit();
  void drop_cancelled();
  bool step();  // false when there was nothing to run
  void finish(Sequence& s, FinishReason reason, const std::string& error = {});
  void preempt(Sequence& s);
  void register_prefix(Sequence& s);

  std::unique_ptr<ForwardBackend> backend_;
  EngineOptions options_;
  ThreadPool pool_;
  struct Kv;
  std::unique_ptr<Kv> kv_;
  uint64_t kv_block_bytes_ = 0;  // one block on the rank holding the most

  std::mutex mu_;  // guards inbox_, stop_
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> inbox_;
  bool stop_ = false;
  std::atomic<int64_t> queued_{0};  // inbox + waiting, for the queue limit

  // Scheduler thread only.
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order

  struct Counters;
  std::unique_ptr<Counters> counters_;
  std::thread thread_;
};

}  // namespace qcoder::engine
