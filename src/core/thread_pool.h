// A persistent pool of worker threads for data-parallel loops. The calling thread takes part,
// so ThreadPool(1) runs everything inline.
//
// One decoded token runs hundreds of parallel regions, so a region must cost microseconds:
// workers wait on an atomic generation counter, first polling (a short pause loop, then
// sched_yield so that an oversubscribed machine - several ranks on 2 cores - gives the core to
// whoever has work), and only after ~2 ms without work block on a futex (std::atomic::wait).
// Regions take a callable by reference (no std::function, no allocation).
//
// Determinism: parallel_for splits [0, n) into static contiguous ranges; parallel_items hands
// out items dynamically. Neither affects results as long as each item's arithmetic does not
// depend on which thread runs it, which is the rule for every kernel in qcoder.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace qcoder {

class ThreadPool {
 public:
  // num_threads <= 0 means all hardware threads.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint contiguous sub-ranges covering [0, n), in parallel;
  // returns when all are done. Ranges are at least min_chunk long (except the last). Not
  // reentrant: fn must not call back into the pool.
  template <class F>
  void parallel_for(int64_t n, F&& fn, int64_t min_chunk = 1) {
    using Fn = std::remove_reference_t<F>;
    run_static(n, min_chunk, [](void* ctx, int64_t b, int64_t e) { (*static_cast<Fn*>(ctx))(b, e); },
               const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Calls fn(item, thread) once for every item in [0, n), items handed out one at a time to
  // whichever thread is free (for uneven items, e.g. experts with different token counts).
  // thread is in [0, size()) and identifies per-thread scratch.
  template <class F>
  void parallel_items(int64_t n, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run_dynamic(n, [](void* ctx, int64_t item, int64_t thread) { (*static_cast<Fn*>(ctx))(item, static_cast<int>(thread)); },
                const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using Call = void (*)(void* ctx, int64_t a, int64_t b);
  void run_static(int64_t n, int64_t min_chunk, Call call, void* ctx);
  void run_dynamic(int64_t n, Call call, void* ctx);
  void dispatch(int parts);  // publishes the job to workers 1..parts-1, runs part 0, waits
  void run_part(int index, int parts);
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  // The job (written by the caller before the generation bump, read by workers after it).
  Call call_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  bool dynamic_ = false;
  alignas(64) std::atomic<int64_t> next_item_{0};
  alignas(64) std::atomic<uint64_t> generation_{0};  // (counter << 16) | parts
  alignas(64) std::atomic<int> pending_{0};
  alignas(64) std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace qcoder
