// The MPI communicator under mpirun -np 2 and 3: point to point, broadcast, all-gather, the
// rank-order all-reduce (the same bits everywhere), sub-communicators, topology.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include "mpi/mpi_world.h"

namespace qcoder {
namespace {

using testing::world;

TEST(MpiComm, IsMpiWithSeveralRanks) {
  EXPECT_EQ(world().backend(), "mpi");
  EXPECT_GE(world().size(), 2);
}

TEST(MpiComm, SendRecvAlongARing) {
  auto& w = world();
  const int next = (w.rank() + 1) % w.size(), prev = (w.rank() + w.size() - 1) % w.size();
  std::vector<int32_t> out(1000), in(1000, -1);
  std::iota(out.begin(), out.end(), w.rank() * 1000);
  auto pending = w.send_async(out.data(), out.size() * 4, next, 7);
  w.recv(in.data(), in.size() * 4, prev, 7);
  pending->wait();
  EXPECT_EQ(in[0], prev * 1000);
  EXPECT_EQ(in[999], prev * 1000 + 999);
  // Empty messages are messages too.
  auto empty = w.send_async(nullptr, 0, next, 8);
  w.recv(nullptr, 0, prev, 8);
  empty->wait();
}

TEST(MpiComm, BroadcastFromEveryRoot) {
  auto& w = world();
  for (int root = 0; root < w.size(); ++root) {
    std::vector<double> v(33, w.rank() == root ? 1.5 * root : -1.0);
    w.broadcast(v.data(), v.size() * sizeof(double), root);
    EXPECT_EQ(v[0], 1.5 * root);
    EXPECT_EQ(v[32], 1.5 * root);
  }
}

TEST(MpiComm, AllReduceIsTheRankOrderSumOnEveryRank) {
  auto& w = world();
  // Values whose float32 sum depends on the order, so a different order would show.
  const size_t n = 4097;
  auto value = [](int r, size_t i) {
    return static_cast<float>(std::sin(static_cast<double>(i) * 0.37 + r) *
                              std::pow(10.0, (i + static_cast<size_t>(r)) % 9));
  };
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = value(w.rank(), i);
  w.all_reduce_sum(v.data(), n);
  std::vector<float> want(n);
  for (size_t i = 0; i < n; ++i) {
    float s = value(0, i);
    for (int r = 1; r < w.size(); ++r) s += value(r, i);
    want[i] = s;
  }
  EXPECT_EQ(std::memcmp(v.data(), want.data(), n * sizeof(float)), 0);
  // And every rank holds exactly rank 0's bits.
  std::vector<float> all(n * static_cast<size_t>(w.size()));
  w.all_gather(v.data(), n * sizeof(float), all.data());
  for (int r = 1; r < w.size(); ++r)
    EXPECT_EQ(std::memcmp(&all[static_cast<size_t>(r) * n], all.data(), n * sizeof(float)), 0) << r;
}

TEST(MpiComm, SplitMakesStageGroups) {
  auto& w = world();
  // Ranks {0} and {1..N-1}, like a combined plan's stages.
  const int color = w.rank() == 0 ? 0 : 1;
  auto sub = w.split(color, w.rank());
  EXPECT_EQ(sub->size(), color == 0 ? 1 : w.size() - 1);
  EXPECT_EQ(sub->rank(), color == 0 ? 0 : w.rank() - 1);
  std::vector<float> v = {static_cast<float>(w.rank())};
  sub->all_reduce_sum(v.data(), 1);
  const float want = color == 0 ? 0.0f : static_cast<float>(w.size() * (w.size() - 1) / 2);
  EXPECT_EQ(v[0], want);
  w.barrier();
}

TEST(MpiComm, TopologySeesOneMachine) {
  const dist::Topology t = dist::gather_topology(world());
  EXPECT_EQ(t.nodes(), 1);
  EXPECT_EQ(t.ranks_on_node(0), world().size());
  ASSERT_EQ(t.mem_available.size(), static_cast<size_t>(world().size()));
  EXPECT_GT(t.mem_available[0], 0u);
}

TEST(MpiComm, StatsCountWaits) {
  auto& w = world();
  w.reset_stats();
  w.barrier();
  EXPECT_EQ(w.stats().operations, 1);
}

}  // namespace
}  // namespace qcoder
