// The scheduler: continuous batching with chunked prefill gives every request the tokens it
// gets alone; the prefix cache, preemption and cancellation change nothing in the output.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <thread>

#include "engine/engine_fixture.h"

namespace qcoder::engine {
namespace {

struct Result {
  std::vector<int32_t> tokens;
  FinishReason reason = FinishReason::kNone;
  int64_t cached = 0;
};

Result collect(RequestState& st) {
  Result r;
  std::vector<TokenEvent> ev;
  while (!st.take(ev)) st.wait_for(std::chrono::milliseconds(100));
  for (const auto& e : ev) r.tokens.push_back(e.token);
  r.reason = st.finish_reason();
  r.cached = st.cached_tokens();
  return r;
}

GenerationParams greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
  GenerationParams p;
  p.prompt = std::move(prompt);
  p.max_tokens = max_tokens;
  return p;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { model_ = Model::load(testing::engine_fixture_dir()); }
  EngineOptions opts(int slots) {
    EngineOptions o;
    o.slots = slots;
    o.threads = 2;
    o.ctx_size = 256;
    o.kv_budget_bytes = 64ull << 20;
    o.prefix_cache_bytes = 16ull << 20;
    return o;
  }
  std::vector<GenerationParams> workload() {
    std::vector<GenerationParams> w;
    for (int i = 0; i < 12; ++i) {
      auto p =
          greedy(testing::lcg_prompt(static_cast<size_t>(3 + 7 * i), 512, 100 + i), 10 + i % 4);
      if (i % 3 == 2) {  // some sampled, seeded requests too
        p.sampling.temperature = 0.8f;
        p.sampling.top_p = 0.9f;
        p.sampling.seed = 1000 + i;
      }
      w.push_back(p);
    }
    return w;
  }
  std::unique_ptr<Model> model_;
};

TEST_F(EngineTest, BatchedEqualsAlone) {
  const auto w = workload();
  std::vector<Result> alone;
  {
    auto o = opts(1);
    o.prefix_cache_bytes = 0;
    Engine e(*model_, o);
    for (const auto& p : w) alone.push_back(collect(*e.submit(p)));
  }
  auto o = opts(16);
  o.prefill_chunk = 5;  // prompts spread over several steps
  o.batch_tokens = 24;
  Engine e(*model_, o);
  std::vector<std::shared_ptr<RequestState>> states;
  for (const auto& p : w) states.push_back(e.submit(p));
  for (size_t i = 0; i < w.size(); ++i) {
    const Result r = collect(*states[i]);
    EXPECT_EQ(r.tokens, alone[i].tokens) << "request " << i;
    EXPECT_EQ(r.reason, FinishReason::kLength);
    EXPECT_EQ(static_cast<int64_t>(r.tokens.size()), w[i].max_tokens);
  }
  for (int i = 0; i < 100 && e.stats().running > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const EngineStats s = e.stats();
  EXPECT_GE(s.max_running, 8);
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.kv_blocks_used, s.prefix_cache_blocks);  // only the prefix cache holds blocks
}

TEST_F(EngineTest, PrefixCacheReusesTheLongestPrefix) {
  const auto first = testing::lcg_prompt(70, 512, 9);
  auto second = first;
  for (int32_t t : testing::lcg_prompt(9, 512, 10)) second.push_back(t);
  Result cold;
  {
    auto o = opts(4);
    o.prefix_cache_bytes = 0;
    Engine e(*model_, o);
    cold = collect(*e.submit(greedy(second, 8)));
    EXPECT_EQ(cold.cached, 0);
  }
  Engine e(*model_, opts(4));
  const Result a = collect(*e.submit(greedy(first, 8)));
  const Result b = collect(*e.submit(greedy(second, 8)));
  EXPECT_EQ(b.tokens, cold.tokens);
  EXPECT_EQ(b.cached, 64);  // 4 whole blocks of 16 of the first prompt
  // The same prompt again: everything but the last token comes from the cache (the partly
  // used last block is copied on write).
  const Result c = collect(*e.submit(greedy(second, 8)));
  EXPECT_EQ(c.tokens, cold.tokens);
  EXPECT_EQ(c.cached, static_cast<int64_t>(second.size()) - 1);
  EXPECT_EQ(e.stats().cache_hits, 2);
}

TEST_F(EngineTest, PreemptionWhenTheKvPoolIsFullGivesTheSameTokens) {
  const auto w = workload();
  std::vector<Result> alone;
  {
    Engine e(*model_, opts(1));
    for (const auto& p : w) alone.push_back(collect(*e.submit(p)));
  }
  auto o = opts(12);
  const uint64_t block_bytes = static_cast<uint64_t>(kv_block_bytes(model_->config(), 16, KvFormat{}));
  o.kv_budget_bytes = 12 * block_bytes;  // far less than 12 sequences need at once
  o.prefix_cache_bytes = 4 * block_bytes;
  o.ctx_size = 12 * 16;                   // what the budget holds (more is refused)
  Engine e(*model_, o);
  std::vector<std::shared_ptr<RequestState>> states;
  for (const auto& p : w) states.push_back(e.submit(p));
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(collect(*states[i]).tokens, alone[i].tokens) << i;
  EXPECT_LE(e.stats().kv_blocks_used, 4);
}

// A context the KV budget cannot hold is refused at start with a clear error; without an
// explicit --ctx-size the context shrinks to what the budget holds.
TEST_F(EngineTest, RefusesAContextTheKvBudgetCannotHold) {
  auto o = opts(1);
  const uint64_t block_bytes = static_cast<uint64_t>(kv_block_bytes(model_->config(), 16, KvFormat{}));
  o.kv_budget_bytes = 8 * block_bytes;  // 128 tokens
  o.ctx_size = 256;
  try {
    Engine e(*model_, o);
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("holds 128 tokens"), std::string::npos) << err.what();
  }
  o.ctx_size = 0;
  Engine e(*model_, o);
  EXPECT_EQ(e.options().ctx_size, 128);
  o.ctx_size = 128;
  EXPECT_NO_THROW(Engine(*model_, o));
}

TEST_F(EngineTest, CancelFreesTheSequence) {
  Engine e(*model_, opts(2));
  auto st = e.submit(greedy(testing::lcg_prompt(20, 512, 1), 200));
  std::vector<TokenEvent> ev;
  while (ev.empty()) {
    st->wait_for(std::chrono::milliseconds(100));
    st->take(ev);
  }
  st->cancel();
  const Result r = collect(*st);
  EXPECT_EQ(r.reason, FinishReason::kCancelled);
  EXPECT_LT(ev.size() + r.tokens.size(), 200u);
  EXPECT_EQ(e.stats().kv_blocks_used, e.stats().prefix_cache_blocks);
}

TEST_F(EngineTest, StopTokensLogprobsAndLimits) {
  Engine e(*model_, opts(2));
  const auto prompt = testing::lcg_prompt(12, 512, 4);
  const Result base = collect(*e.submit(greedy(prompt, 6)));
  ASSERT_EQ(base.tokens.size(), 6u);
  auto p = greedy(prompt, 6);
  p.stop_tokens = {base.tokens[3]};
  p.top_logprobs = 3;
  auto st = e.submit(p);
  std::vector<TokenEvent> ev;
  while (!st->take(ev)) st->wait_for(std::chrono::milliseconds(100));
  EXPECT_EQ(st->finish_reason(), FinishReason::kStop);
  ASSERT_EQ(ev.size(), 3u);
  for (size_t i = 0; i < ev.size(); ++i) {
    EXPECT_EQ(ev[i].token, base.tokens[i]);
    ASSERT_EQ(ev[i].top.size(), 3u);
    EXPECT_EQ(ev[i].top[0].first, ev[i].token);  // greedy picks the most likely
    EXPECT_FLOAT_EQ(ev[i].top[0].second, ev[i].logprob);
    EXPECT_LE(ev[i].logprob, 0.0f);
  }
  // Generation stops at the context limit.
  const Result full = collect(*e.submit(greedy(testing::lcg_prompt(250, 512, 2), -1)));
  EXPECT_EQ(full.tokens.size(), 6u);
  EXPECT_EQ(full.reason, FinishReason::kLength);
}

TEST_F(EngineTest, RefusesWhatCanNeverRun) {
  auto o = opts(1);
  o.max_queue = 0;
  Engine e(*model_, o);
  EXPECT_THROW(e.submit(greedy({}, 4)), Error);
  EXPECT_THROW(e.submit(greedy(testing::lcg_prompt(256, 512, 1), 4)), Error);
  EXPECT_THROW(e.submit(greedy({1, 512}, 4)), Error);
  auto bad = greedy({1, 2}, 4);
  bad.sampling.temperature = -1;
  EXPECT_THROW(e.submit(bad), Error);
  EXPECT_THROW(e.submit(greedy({1, 2}, 4)), QueueFull);
}

}  // namespace
}  // namespace qcoder::engine
