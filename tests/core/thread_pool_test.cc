#include "core/thread_pool.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace qcoder {
namespace {

TEST(ThreadPool, CoversRangeExactlyOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[i]++;
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << threads << " " << n << " " << i;
    }
  }
}

TEST(ThreadPool, ManySmallJobs) {
  ThreadPool pool(4);
  std::atomic<int64_t> sum{0};
  for (int j = 0; j < 2000; ++j)
    pool.parallel_for(5, [&](int64_t b, int64_t e) { sum += e - b; });
  EXPECT_EQ(sum.load(), 10000);
}

TEST(ThreadPool, MinChunkLimitsParts) {
  ThreadPool pool(4);
  std::atomic<int> calls{0};
  pool.parallel_for(10, [&](int64_t, int64_t) { calls++; }, 100);
  EXPECT_EQ(calls.load(), 1);
}

TEST(ThreadPool, ItemsRunExactlyOnceWithValidThreadIds) {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 3, 64, 999}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<bool> bad_thread{false};
      pool.parallel_items(n, [&](int64_t i, int t) {
        hits[i]++;
        if (t < 0 || t >= pool.size()) bad_thread = true;
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1);
      EXPECT_FALSE(bad_thread.load());
    }
  }
}

// Workers fall asleep after a couple of idle milliseconds and must wake for the next region.
TEST(ThreadPool, WakesAfterIdle) {
  ThreadPool pool(3);
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::atomic<int64_t> sum{0};
    pool.parallel_for(300, [&](int64_t b, int64_t e) { sum += e - b; });
    EXPECT_EQ(sum.load(), 300);
  }
}

// More pools and threads than cores (several ranks on 2 cores): every region still completes
// (waiting threads yield their core instead of spinning on it).
TEST(ThreadPool, OversubscribedPoolsMakeProgress) {
  std::vector<std::thread> users;
  std::atomic<int64_t> total{0};
  for (int u = 0; u < 4; ++u)
    users.emplace_back([&] {
      ThreadPool pool(4);
      for (int j = 0; j < 300; ++j) pool.parallel_for(64, [&](int64_t b, int64_t e) { total += e - b; });
    });
  for (auto& t : users) t.join();
  EXPECT_EQ(total.load(), 4 * 300 * 64);
}

}  // namespace
}  // namespace qcoder
