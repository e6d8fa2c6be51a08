#include "engine/prefix_cache.h"

#include <gtest/gtest.h>

#include "engine/block_pool.h"

namespace qcoder::engine {
namespace {

std::vector<int32_t> seq(int32_t from, int n) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(from + i);
  return v;
}

TEST(PrefixCacheTest, LongestChainOfWholeBlocks) {
  KvBlockPool pool(4, 8, 16);
  PrefixCache cache(pool, 1 << 20);
  const auto toks = seq(100, 10);  // 2 whole blocks + 2 tokens
  const int32_t b0 = pool.allocate(), b1 = pool.allocate(), b2 = pool.allocate();
  cache.insert(toks, std::vector<int32_t>{b0, b1, b2});
  EXPECT_EQ(cache.entries(), 2);  // the partial third block is not cached
  EXPECT_EQ(pool.ref_count(b0), 2);
  EXPECT_EQ(pool.ref_count(b2), 1);

  auto m = cache.lookup(toks);
  EXPECT_EQ(m.blocks, (std::vector<int32_t>{b0, b1}));
  EXPECT_EQ(m.tokens, 8);
  auto other = toks;
  other[6] = 7;  // differs in the second block: its first two tokens still match
  m = cache.lookup(other);
  EXPECT_EQ(m.blocks, (std::vector<int32_t>{b0, b1}));
  EXPECT_EQ(m.tokens, 6);
  other[0] = 7;
  EXPECT_TRUE(cache.lookup(other).blocks.empty());
  m = cache.lookup(seq(100, 3));  // shorter than a block: a partial match of the first
  EXPECT_EQ(m.blocks, (std::vector<int32_t>{b0}));
  EXPECT_EQ(m.tokens, 3);
  // The same tokens under another parent are another entry.
  EXPECT_TRUE(cache.lookup(seq(104, 4)).blocks.empty());
}

TEST(PrefixCacheTest, BoundedInBytesEvictsLeastRecentlyUsedLeaves) {
  KvBlockPool pool(2, 16, 16);  // 16 bytes per block
  PrefixCache cache(pool, 3 * pool.block_bytes());
  std::vector<int32_t> a_blocks = {pool.allocate(), pool.allocate()};
  std::vector<int32_t> b_blocks = {pool.allocate(), pool.allocate()};
  const auto a = seq(0, 4), b = seq(50, 4);
  cache.insert(a, a_blocks);
  cache.insert(b, b_blocks);  // 4 entries > 3: the oldest leaf (a's second block) goes
  EXPECT_EQ(cache.entries(), 3);
  EXPECT_EQ(cache.lookup(a).tokens, 2);
  EXPECT_EQ(cache.lookup(b).tokens, 4);
  EXPECT_EQ(pool.ref_count(a_blocks[1]), 1);
  EXPECT_LE(cache.bytes(), cache.max_bytes());
  cache.clear();
  EXPECT_EQ(cache.entries(), 0);
  for (int32_t id : a_blocks) EXPECT_EQ(pool.ref_count(id), 1);
}

TEST(PrefixCacheTest, ReclaimFreesOnlyBlocksNobodyElseHolds) {
  KvBlockPool pool(2, 4, 3);
  PrefixCache cache(pool, 1 << 20);
  pool.set_reclaim([&] { return cache.reclaim_one(); });
  const int32_t x = pool.allocate(), y = pool.allocate();
  cache.insert(seq(0, 2), std::vector<int32_t>{x});
  cache.insert(seq(9, 2), std::vector<int32_t>{y});
  pool.release(x);  // only the cache holds x now; y is still used by its "sequence"
  const int32_t z = pool.allocate();
  EXPECT_GE(z, 0);
  const int32_t w = pool.allocate();  // the pool is full: reclaim evicts x's entry
  EXPECT_EQ(w, x);
  EXPECT_EQ(cache.entries(), 1);
  EXPECT_EQ(pool.allocate(), -1);  // y is in use: nothing more to reclaim
}

TEST(PrefixCacheTest, DisabledCacheKeepsNothing) {
  KvBlockPool pool(2, 4, 4);
  PrefixCache cache(pool, 0);
  const int32_t b = pool.allocate();
  cache.insert(seq(0, 2), std::vector<int32_t>{b});
  EXPECT_EQ(cache.entries(), 0);
  EXPECT_EQ(cache.lookup(seq(0, 2)).tokens, 0);
}

}  // namespace
}  // namespace qcoder::engine
