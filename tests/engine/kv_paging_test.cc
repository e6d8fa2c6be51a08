// The paged KV cache: results equal the private cache's whatever the block size, shared
// prefixes are read in place and copied before they are written.
#include <gtest/gtest.h>

#include "engine/block_pool.h"
#include "engine/engine_fixture.h"
#include "model/model.h"

namespace qcoder {
namespace {

using engine::KvBlockPool;

class KvPagingTest : public ::testing::Test {
 protected:
  void SetUp() override { model_ = Model::load(testing::engine_fixture_dir()); }
  std::shared_ptr<KvBlockPool> pool(int64_t block_tokens, int64_t blocks) {
    return std::make_shared<KvBlockPool>(block_tokens,
                                         kv_block_bytes(model_->config(), block_tokens, KvFormat{}), blocks);
  }
  std::vector<float> run(KvCache& cache, const std::vector<int32_t>& ids) {
    SequenceInput in{ids, &cache, LogitsMode::kAll};
    SequenceOutput out;
    model_->forward({&in, 1}, {&out, 1}, threads_);
    return out.logits;
  }
  std::unique_ptr<Model> model_;
  ThreadPool threads_{2};
};

TEST_F(KvPagingTest, PagedEqualsPrivate) {
  const auto ids = testing::lcg_prompt(45, 512, 3);
  KvCache priv = model_->new_cache(128);
  const auto want = run(priv, ids);
  for (int64_t bt : {1, 4, 16}) {
    KvCache paged(model_->config(), 128, pool(bt, 64));
    EXPECT_EQ(run(paged, ids), want) << "block_tokens " << bt;
    EXPECT_EQ(paged.blocks().size(), static_cast<size_t>((45 + bt - 1) / bt));
  }
}

TEST_F(KvPagingTest, SharedPrefixIsCopiedOnWrite) {
  auto p = pool(8, 64);
  const auto ids = testing::lcg_prompt(30, 512, 5);
  const auto tail = testing::lcg_prompt(6, 512, 6);
  KvCache a(model_->config(), 128, p);
  run(a, ids);
  // b starts on a's 4 blocks with 27 positions: block 3 is shared and b's next write falls in
  // it, so b copies it first.
  KvCache b(model_->config(), 128, p);
  b.attach_prefix({a.blocks().data(), 4}, 27);
  EXPECT_EQ(p->ref_count(a.blocks()[3]), 2);
  EXPECT_EQ(b.blocks_needed(3), 1);  // the copy of block 3; positions 27..29 fit in it
  std::vector<int32_t> b_rest(ids.begin() + 27, ids.end());
  b_rest.insert(b_rest.end(), tail.begin(), tail.end());
  const auto got = run(b, b_rest);
  EXPECT_NE(b.blocks()[3], a.blocks()[3]);
  EXPECT_EQ(b.blocks()[0], a.blocks()[0]);

  KvCache fresh = model_->new_cache(128);
  std::vector<int32_t> all = ids;
  all.insert(all.end(), tail.begin(), tail.end());
  const auto want = run(fresh, all);
  const size_t V = 512;
  EXPECT_EQ(got, std::vector<float>(want.begin() + 27 * V, want.end()));
  // a is untouched: continuing it gives what a fresh cache gives.
  EXPECT_EQ(run(a, tail), std::vector<float>(want.begin() + 30 * V, want.end()));
}

TEST_F(KvPagingTest, OutOfBlocksThrowsAndFreesOnRelease) {
  auto p = pool(4, 3);
  {
    KvCache a(model_->config(), 128, p);
    EXPECT_THROW(a.reserve_more(13), KvOutOfMemory);
    EXPECT_EQ(p->in_use(), 3);
    EXPECT_EQ(a.length(), 0);
    a.reserve_more(12);  // what it holds is enough for 12
  }
  EXPECT_EQ(p->in_use(), 0);
  bool reclaimed = false;
  p->set_reclaim([&] { return reclaimed ? false : (reclaimed = true, false); });
  KvCache b(model_->config(), 128, p);
  b.reserve_more(12);
  EXPECT_EQ(p->allocate(), -1);
  EXPECT_TRUE(reclaimed);
  b.commit(12);
  b.truncate(5);  // keeps 2 blocks
  EXPECT_EQ(p->in_use(), 2);
  EXPECT_THROW(b.truncate(6), Error);
}

}  // namespace
}  // namespace qcoder
