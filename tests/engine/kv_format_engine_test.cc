// The scheduler with each KV format: the budget is counted in bytes of the chosen format, and
// batching, the prefix cache and preemption still change nothing in a request's tokens.
#include <gtest/gtest.h>

#include "engine/engine.h"
#include "engine/engine_fixture.h"
#include "sampling/sampler.h"

namespace qcoder::engine {
namespace {

std::vector<int32_t> collect(RequestState& st) {
  std::vector<int32_t> out;
  std::vector<TokenEvent> ev;
  while (!st.take(ev)) st.wait_for(std::chrono::milliseconds(100));
  for (const auto& e : ev) out.push_back(e.token);
  return out;
}

class KvFormatEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { model_ = Model::load(testing::engine_fixture_dir()); }
  EngineOptions opts(int slots, const KvFormat& f) {
    EngineOptions o;
    o.slots = slots;
    o.threads = 2;
    o.ctx_size = 256;
    o.kv_format = f;
    o.kv_budget_bytes = 64ull << 20;
    o.prefix_cache_bytes = 16ull << 20;
    return o;
  }
  std::vector<GenerationParams> workload() {
    std::vector<GenerationParams> w;
    for (int i = 0; i < 8; ++i) {
      GenerationParams p;
      // Requests 4..7 repeat the start of 0..3: prefix-cache hits.
      p.prompt = testing::lcg_prompt(static_cast<size_t>(20 + 9 * (i % 4)), 512, 300 + i % 4);
      if (i >= 4) p.prompt.push_back(7 + i);
      p.max_tokens = 8;
      w.push_back(p);
    }
    return w;
  }
  std::unique_ptr<Model> model_;
};

TEST_F(KvFormatEngineTest, BudgetCountsBytesOfTheFormat) {
  const uint64_t budget = 8ull << 20;
  int64_t prev_blocks = 0;
  for (int bits : {32, 16, 8, 4}) {  // fewer bytes per block: more blocks in the same budget
    auto o = opts(2, kv_format_from_bits(bits));
    o.kv_budget_bytes = budget;
    Engine e(*model_, o);
    const EngineStats s = e.stats();
    EXPECT_EQ(s.kv_block_bytes, static_cast<uint64_t>(kv_block_bytes(model_->config(), 16, o.kv_format)));
    EXPECT_EQ(s.kv_blocks_total, static_cast<int64_t>(budget / s.kv_block_bytes)) << bits;
    EXPECT_GT(s.kv_blocks_total, prev_blocks) << bits;
    prev_blocks = s.kv_blocks_total;
  }
}

TEST_F(KvFormatEngineTest, BatchedPrefixCachedAndPreemptedEqualAloneAndTheModel) {
  const auto w = workload();
  for (int bits : {8, 4}) {
    SCOPED_TRACE(bits);
    const KvFormat f = kv_format_from_bits(bits);
    // The model directly, greedy, with a private cache of the format.
    std::vector<std::vector<int32_t>> direct;
    ThreadPool pool(2);
    for (const auto& p : w) {
      KvCache cache(model_->config(), 256, f);
      std::vector<int32_t> in = p.prompt, out, history = p.prompt;
      Sampler sampler(p.sampling, static_cast<size_t>(model_->config().vocab_size));
      for (int64_t t = 0; t < p.max_tokens; ++t) {
        SequenceInput si{in, &cache, LogitsMode::kLast};
        SequenceOutput so;
        model_->forward({&si, 1}, {&so, 1}, pool);
        const int32_t tok = sampler.sample(so.logits, history);
        history.push_back(tok);
        out.push_back(tok);
        in.assign(1, tok);
      }
      direct.push_back(out);
    }
    auto o = opts(8, f);
    const uint64_t block = static_cast<uint64_t>(kv_block_bytes(model_->config(), 16, f));
    o.kv_budget_bytes = 10 * block;  // tight: preemption
    o.prefix_cache_bytes = 4 * block;
    o.ctx_size = 10 * 16;            // what the budget holds (more is refused)
    Engine e(*model_, o);
    std::vector<std::shared_ptr<RequestState>> states;
    for (const auto& p : w) states.push_back(e.submit(p));
    for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(collect(*states[i]), direct[i]) << i;
  }
}

}  // namespace
}  // namespace qcoder::engine
