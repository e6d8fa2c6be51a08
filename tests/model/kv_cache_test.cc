// The KV cache in every format (bf16 default, q8, q4, f32): rows round-trip through the
// reference codec, block sizes follow the format, and the forward pass keeps its invariances
// with each: chunked prefill equals one call, thread counts agree, paged blocks of any size
// equal the private cache, and a shared prefix is copied before it is written.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/reference/kv_ref.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/model_fixture.h"

namespace qcoder {
namespace {

const KvFormat kFormats[] = {kv_format_from_bits(16), kv_format_from_bits(8), kv_format_from_bits(4),
                             kv_format_from_bits(32)};

// A bounded test allocator (the server's pool lives in engine/, above the model).
class TestPool final : public KvBlockAllocator {
 public:
  TestPool(int64_t bt, int64_t bytes) : bt_(bt), bytes_(bytes) {}
  int64_t block_tokens() const override { return bt_; }
  int64_t block_bytes() const override { return bytes_; }
  int32_t allocate() override {
    data_.push_back(std::make_unique<uint8_t[]>(static_cast<size_t>(bytes_)));
    refs_.push_back(1);
    return static_cast<int32_t>(data_.size() - 1);
  }
  void retain(int32_t b) override { ++refs_[static_cast<size_t>(b)]; }
  void release(int32_t b) override { --refs_[static_cast<size_t>(b)]; }
  int32_t ref_count(int32_t b) const override { return refs_[static_cast<size_t>(b)]; }
  uint8_t* block_data(int32_t b) override { return data_[static_cast<size_t>(b)].get(); }

 private:
  int64_t bt_, bytes_;
  std::vector<std::unique_ptr<uint8_t[]>> data_;
  std::vector<int32_t> refs_;
};

std::vector<int32_t> prompt(size_t n, int vocab, uint32_t seed) { return testing::lcg_ids(n, vocab, seed); }

class KvCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { model_ = Model::load(testing::fixture_dir("q4_g64")); }
  std::vector<float> run(KvCache& cache, const std::vector<std::vector<int32_t>>& chunks,
                         int threads = 2) {
    ThreadPool pool(threads);
    std::vector<float> all;
    for (const auto& c : chunks) {
      SequenceInput in{c, &cache, LogitsMode::kAll};
      SequenceOutput out;
      model_->forward({&in, 1}, {&out, 1}, pool);
      all.insert(all.end(), out.logits.begin(), out.logits.end());
    }
    return all;
  }
  std::unique_ptr<Model> model_;
};

TEST_F(KvCacheTest, RowsRoundTripThroughTheFormat) {
  const ModelConfig& c = model_->config();
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const KvFormat& f : kFormats) {
    SCOPED_TRACE(kv_format_name(f));
    KvCache cache(c, 64, f);
    cache.reserve_more(20);
    const int64_t n = cache.row_elems();
    EXPECT_EQ(cache.row_bytes(), kv_row_bytes(f, n));
    std::vector<float> k(static_cast<size_t>(n)), v(k.size()), back(k.size()), want(k.size());
    std::vector<uint8_t> enc(static_cast<size_t>(cache.row_bytes()));
    for (int64_t pos : {0, 7, 19}) {
      for (auto& x : k) x = nd(rng);
      for (auto& x : v) x = nd(rng);
      cache.store(1, pos, k.data(), v.data());
      cache.load_value(1, pos, back.data());
      ref::kv_encode_row(f, v.data(), n, enc.data());
      ref::kv_decode(f, enc.data(), n, 0, n, want.data());
      EXPECT_EQ(back, want);
      cache.load_key(1, pos, back.data());
      const double tol = f.dtype == KvDtype::kF32 ? 0.0 : f.dtype == KvDtype::kBF16 ? 8e-3 : f.dtype == KvDtype::kQ8 ? 0.03 : 0.5;
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(back[i], k[i], tol * std::max(1.0f, std::fabs(k[i])));
    }
  }
}

TEST_F(KvCacheTest, BytesFollowTheFormat) {
  const ModelConfig& c = model_->config();
  const int64_t elems = c.num_key_value_heads * c.head_dim, L = c.num_hidden_layers;
  EXPECT_EQ(kv_bytes_per_token(c, kv_format_from_bits(32)), L * 2 * elems * 4);
  EXPECT_EQ(kv_bytes_per_token(c, kv_format_from_bits(16)), L * 2 * elems * 2);
  EXPECT_EQ(kv_bytes_per_token(c, kv_format_from_bits(8)), L * 2 * (elems + 4 * elems / 64));
  EXPECT_EQ(kv_bytes_per_token(c, kv_format_from_bits(4)), L * 2 * (elems / 2 + 4 * elems / 64));
  KvCache cache(c, 200, kv_format_from_bits(8));
  cache.reserve_more(65);  // two private blocks of 64 positions
  EXPECT_EQ(cache.bytes(), static_cast<uint64_t>(2 * kv_block_bytes(c, 64, kv_format_from_bits(8))));
  // The 480B: 253,952 bytes per token in bf16 (../shared/spec/targets.md).
  ModelConfig big = c;
  big.num_hidden_layers = 62;
  big.num_key_value_heads = 8;
  big.head_dim = 128;
  EXPECT_EQ(kv_bytes_per_token(big, KvFormat{}), 253952);
}

TEST_F(KvCacheTest, BadFormatOrPoolIsAClearError) {
  const ModelConfig& c = model_->config();
  EXPECT_THROW(KvCache(c, 64, kv_format_from_bits(8, 128)), Error);  // head_dim 64
  auto pool = std::make_shared<TestPool>(8, kv_block_bytes(c, 8, kv_format_from_bits(16)));
  EXPECT_THROW(KvCache(c, 64, pool, kv_format_from_bits(8)), Error);
  EXPECT_NO_THROW(KvCache(c, 64, pool, kv_format_from_bits(16)));
}

TEST_F(KvCacheTest, ChunkingThreadsAndPagingChangeNoBitInAnyFormat) {
  const auto ids = prompt(70, static_cast<int>(model_->config().vocab_size), 9);
  const std::vector<int32_t> a(ids.begin(), ids.begin() + 33), b(ids.begin() + 33, ids.begin() + 34),
      rest(ids.begin() + 34, ids.end());
  for (const KvFormat& f : kFormats) {
    SCOPED_TRACE(kv_format_name(f));
    KvCache one(model_->config(), 128, f);
    const auto want = run(one, {ids});
    KvCache chunked(model_->config(), 128, f);
    EXPECT_EQ(run(chunked, {a, b, rest}, 1), want);
    for (int64_t bt : {1, 16}) {
      KvCache paged(model_->config(), 128,
                    std::make_shared<TestPool>(bt, kv_block_bytes(model_->config(), bt, f)), f);
      EXPECT_EQ(run(paged, {ids}, 3), want) << "block_tokens " << bt;
    }
  }
}

TEST_F(KvCacheTest, SharedPrefixIsCopiedOnWriteInAnyFormat) {
  const auto ids = prompt(30, static_cast<int>(model_->config().vocab_size), 5);
  for (const KvFormat& f : kFormats) {
    SCOPED_TRACE(kv_format_name(f));
    auto p = std::make_shared<TestPool>(8, kv_block_bytes(model_->config(), 8, f));
    KvCache a(model_->config(), 128, p, f);
    const auto full = run(a, {ids});
    KvCache b(model_->config(), 128, p, f);
    b.attach_prefix({a.blocks().data(), 4}, 27);
    const std::vector<int32_t> tail(ids.begin() + 27, ids.end());
    const auto got = run(b, {tail});
    EXPECT_NE(b.blocks()[3], a.blocks()[3]);
    const size_t V = static_cast<size_t>(model_->config().vocab_size);
    EXPECT_EQ(std::vector<float>(got.begin(), got.end()),
              std::vector<float>(full.begin() + 27 * V, full.end()));
  }
}

}  // namespace
}  // namespace qcoder
