#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>

namespace qcoder {
namespace {

// Static partition of [0, n) into `parts` contiguous ranges.
std::pair<int64_t, int64_t> part_range(int64_t n, int parts, int index) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = index * base + std::min<int64_t>(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `done()` with a short pause loop, then sched_yield (which hands the core to another
// runnable thread when the machine is oversubscribed and returns at once otherwise). Returns
// false when `budget` elapsed without done() becoming true.
template <class Done>
bool poll_until(Done done, std::chrono::microseconds budget) {
  for (int i = 0; i < 256; ++i) {
    if (done()) return true;
    cpu_relax();
  }
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (done()) return true;
    sched_yield();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() - start > budget) return false;
  }
}

constexpr std::chrono::microseconds kWorkerPoll{2000};  // then block on the futex

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1 << 16, std::memory_order_seq_cst);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_static(int64_t n, int64_t min_chunk, Call call, void* ctx) {
  if (n <= 0) return;
  const int64_t by_chunk = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
  const int parts = static_cast<int>(std::min<int64_t>(size(), by_chunk));
  if (parts <= 1) {
    call(ctx, 0, n);
    return;
  }
  call_ = call;
  ctx_ = ctx;
  n_ = n;
  dynamic_ = false;
  dispatch(parts);
}

void ThreadPool::run_dynamic(int64_t n, Call call, void* ctx) {
  if (n <= 0) return;
  const int parts = static_cast<int>(std::min<int64_t>(size(), n));
  if (parts <= 1) {
    for (int64_t i = 0; i < n; ++i) call(ctx, i, 0);
    return;
  }
  call_ = call;
  ctx_ = ctx;
  n_ = n;
  dynamic_ = true;
  next_item_.store(0, std::memory_order_relaxed);
  dispatch(parts);
}

void ThreadPool::dispatch(int parts) {
  pending_.store(parts - 1, std::memory_order_relaxed);
  // The generation word carries the part count, so a worker that is not part of this job
  // never reads the job's fields (which the next job may already be overwriting).
  const uint64_t counter = (generation_.load(std::memory_order_relaxed) >> 16) + 1;
  generation_.store((counter << 16) | static_cast<uint64_t>(parts), std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
  run_part(0, parts);
  // Wait for the workers; the caller never sleeps on a futex (regions are short).
  while (!poll_until([this] { return pending_.load(std::memory_order_acquire) == 0; },
                     std::chrono::microseconds(1000000))) {
  }
  call_ = nullptr;
}

void ThreadPool::run_part(int index, int parts) {
  if (dynamic_) {
    for (;;) {
      const int64_t item = next_item_.fetch_add(1, std::memory_order_relaxed);
      if (item >= n_) break;
      call_(ctx_, item, index);
    }
  } else {
    const auto [b, e] = part_range(n_, parts, index);
    call_(ctx_, b, e);
  }
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    const auto has_job = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    if (!poll_until(has_job, kWorkerPoll)) {
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      // Re-check after announcing ourselves, so a bump between the poll and the wait is seen.
      while (generation_.load(std::memory_order_seq_cst) == seen) generation_.wait(seen, std::memory_order_acquire);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    const int parts = static_cast<int>(seen & 0xffff);
    if (index < parts) {
      run_part(index, parts);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

}  // namespace qcoder
