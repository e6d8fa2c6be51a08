// Properties of the forward pass that the server relies on: a row's result does not depend on
// the rest of the batch, on how a prompt is chunked, or on the thread count; bad requests fail
// before any cache changes.
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/model.h"
#include "model/model_fixture.h"

namespace qcoder {
namespace {

std::vector<float> run(const Model& m, const std::vector<std::vector<int32_t>>& chunks, int threads,
                       int64_t capacity = 512) {
  ThreadPool pool(threads);
  KvCache cache = m.new_cache(capacity);
  std::vector<float> all;
  for (const auto& c : chunks) {
    SequenceInput in{c, &cache, LogitsMode::kAll};
    SequenceOutput out;
    m.forward({&in, 1}, {&out, 1}, pool);
    all.insert(all.end(), out.logits.begin(), out.logits.end());
  }
  return all;
}

std::vector<int32_t> prompt(size_t n, int vocab, uint32_t seed) { return testing::lcg_ids(n, vocab, seed); }

class ForwardTest : public ::testing::Test {
 protected:
  void SetUp() override { model_ = Model::load(testing::fixture_dir("q4_g64")); }
  std::unique_ptr<Model> model_;
};

TEST_F(ForwardTest, ChunkingAndThreadsDoNotChangeResults) {
  const auto ids = prompt(37, static_cast<int>(model_->config().vocab_size), 7);
  const auto whole = run(*model_, {ids}, 1);
  const std::vector<std::vector<int32_t>> chunks = {
      {ids.begin(), ids.begin() + 1}, {ids.begin() + 1, ids.begin() + 20}, {ids.begin() + 20, ids.end()}};
  EXPECT_EQ(run(*model_, chunks, 1), whole);
  EXPECT_EQ(run(*model_, {ids}, 2), whole);
  EXPECT_EQ(run(*model_, chunks, 3), whole);
  std::vector<std::vector<int32_t>> singles;
  for (int32_t t : ids) singles.push_back({t});
  EXPECT_EQ(run(*model_, singles, 2), whole);
}

// Past one attention key chunk (ops::kAttnChunk = 512 positions) decode steps run the chunks as
// separate work items (flash-decoding) and prefill folds them inside each query tile: the rows
// must still not depend on the chunking of the prompt or on the threads.
TEST_F(ForwardTest, LongContextDecodeMatchesPrefill) {
  const auto ids = prompt(1100, static_cast<int>(model_->config().vocab_size), 9);
  const auto whole = run(*model_, {ids}, 2, 1200);
  const std::vector<std::vector<int32_t>> chunks = {{ids.begin(), ids.begin() + 1000},
                                                    {ids.begin() + 1000, ids.begin() + 1093},
                                                    {ids.begin() + 1093, ids.begin() + 1098},
                                                    {ids.begin() + 1098, ids.begin() + 1099},
                                                    {ids.begin() + 1099, ids.end()}};
  EXPECT_EQ(run(*model_, chunks, 1, 1200), whole);
  EXPECT_EQ(run(*model_, chunks, 3, 1200), whole);
}

TEST_F(ForwardTest, BatchCompositionDoesNotChangeRows) {
  const int V = static_cast<int>(model_->config().vocab_size);
  const auto a = prompt(25, V, 1), b = prompt(9, V, 2), c = prompt(1, V, 3);
  const auto alone_a = run(*model_, {a}, 2), alone_b = run(*model_, {b}, 2), alone_c = run(*model_, {c}, 2);
  ThreadPool pool(2);
  KvCache ca = model_->new_cache(64), cb = model_->new_cache(64), cc = model_->new_cache(64);
  std::vector<SequenceInput> batch = {{a, &ca, LogitsMode::kAll}, {b, &cb, LogitsMode::kAll}, {c, &cc, LogitsMode::kAll}};
  std::vector<SequenceOutput> out(3);
  model_->forward(batch, out, pool);
  EXPECT_EQ(out[0].logits, alone_a);
  EXPECT_EQ(out[1].logits, alone_b);
  EXPECT_EQ(out[2].logits, alone_c);
  // Decode steps of different sequences batched together, at different cache lengths.
  const std::vector<int32_t> na = {5}, nb = {6};
  std::vector<SequenceInput> step = {{na, &ca, LogitsMode::kLast}, {nb, &cb, LogitsMode::kLast}};
  std::vector<SequenceOutput> step_out(2);
  model_->forward(step, step_out, pool);
  auto a2 = a;
  a2.push_back(5);
  const auto ref = run(*model_, {a2}, 1);
  const size_t V2 = static_cast<size_t>(V);
  EXPECT_EQ(step_out[0].logits, std::vector<float>(ref.end() - static_cast<std::ptrdiff_t>(V2), ref.end()));
  EXPECT_EQ(ca.length(), 26);
  EXPECT_EQ(cb.length(), 10);
}

TEST_F(ForwardTest, LastEqualsLastRowOfAll) {
  const auto ids = prompt(11, static_cast<int>(model_->config().vocab_size), 4);
  const auto all = run(*model_, {ids}, 2);
  ThreadPool pool(2);
  KvCache cache = model_->new_cache(32);
  SequenceInput in{ids, &cache, LogitsMode::kLast};
  SequenceOutput out;
  model_->forward({&in, 1}, {&out, 1}, pool);
  ASSERT_EQ(out.rows, 1);
  const size_t V = static_cast<size_t>(model_->config().vocab_size);
  EXPECT_EQ(out.logits, std::vector<float>(all.end() - static_cast<std::ptrdiff_t>(V), all.end()));
}

TEST_F(ForwardTest, BadRequestsFailBeforeTouchingCaches) {
  ThreadPool pool(1);
  KvCache cache = model_->new_cache(8);
  const std::vector<int32_t> bad = {1, static_cast<int32_t>(model_->config().vocab_size)};
  SequenceInput in{bad, &cache, LogitsMode::kLast};
  SequenceOutput out;
  EXPECT_THROW(model_->forward({&in, 1}, {&out, 1}, pool), Error);
  EXPECT_EQ(cache.length(), 0);
  const std::vector<int32_t> negative = {-1};
  in.tokens = negative;
  EXPECT_THROW(model_->forward({&in, 1}, {&out, 1}, pool), Error);
  const std::vector<int32_t> too_long(9, 1);
  in.tokens = too_long;
  EXPECT_THROW(model_->forward({&in, 1}, {&out, 1}, pool), Error);
  EXPECT_EQ(cache.length(), 0);
  const std::vector<int32_t> ok = {1, 2};
  std::vector<SequenceInput> shared = {{ok, &cache, LogitsMode::kLast}, {ok, &cache, LogitsMode::kLast}};
  std::vector<SequenceOutput> outs(2);
  EXPECT_THROW(model_->forward(shared, outs, pool), Error);
  EXPECT_EQ(cache.length(), 0);
}

}  // namespace
}  // namespace qcoder
