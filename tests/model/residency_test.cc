// Expert use counts and the weight residency policy (issue 8: models larger than RAM).
// The paging test builds a model whose experts take ~42 MB and runs it under a budget of a
// fraction of that, checking the weight pages mapped in this process (smaps Rss) after every
// step; the policy test feeds a synthetic skewed routing trace (random weights say nothing
// about real expert popularity).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/process_memory.h"
#include "model/expert_usage.h"
#include "model/model.h"
#include "model/residency.h"
#include "model_fixture.h"

namespace qcoder {
namespace {

using testing::EditableModel;
using testing::TestTensor;

constexpr int64_t kExperts = 64, kInter = 1024;

uint16_t bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);
}

// A 4-bit g64 affine matrix [lead..., rows, cols] with random codes, as MLX packs it.
void put_q4(EditableModel& m, const std::string& name, std::vector<int64_t> lead, int64_t rows,
            int64_t cols, std::mt19937& rng) {
  int64_t count = rows;
  for (int64_t d : lead) count *= d;
  std::vector<int64_t> wshape = lead, sshape = lead;
  wshape.insert(wshape.end(), {rows, cols / 8});
  sshape.insert(sshape.end(), {rows, cols / 64});
  TestTensor w{name + ".weight", "U32", wshape, std::vector<uint8_t>(static_cast<size_t>(count * cols / 2))};
  for (auto& b : w.data) b = static_cast<uint8_t>(rng());
  TestTensor s{name + ".scales", "BF16", sshape, {}}, z{name + ".biases", "BF16", sshape, {}};
  for (int64_t i = 0; i < count * cols / 64; ++i) {
    const uint16_t sv = bf16(0.02f), zv = bf16(-0.15f);
    s.data.push_back(static_cast<uint8_t>(sv)), s.data.push_back(static_cast<uint8_t>(sv >> 8));
    z.data.push_back(static_cast<uint8_t>(zv)), z.data.push_back(static_cast<uint8_t>(zv >> 8));
  }
  for (TestTensor* t : {&w, &s, &z}) {
    m.drop(t->name);
    m.tensors.push_back(std::move(*t));
  }
}

// The q4_g64 fixture with 64 experts of 1024 per layer: ~221 KB per expert, ~42 MB in all.
std::string write_big_expert_model(EditableModel& m) {
  std::mt19937 rng(7);
  const int64_t H = m.config["hidden_size"], L = m.config["num_hidden_layers"];
  m.config["num_experts"] = kExperts;
  m.config["moe_intermediate_size"] = kInter;
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".mlp.";
    put_q4(m, p + "gate", {}, kExperts, H, rng);
    put_q4(m, p + "switch_mlp.gate_proj", {kExperts}, kInter, H, rng);
    put_q4(m, p + "switch_mlp.up_proj", {kExperts}, kInter, H, rng);
    put_q4(m, p + "switch_mlp.down_proj", {kExperts}, H, kInter, rng);
  }
  return m.write();
}

std::vector<int32_t> greedy(const Model& model, int64_t steps, std::vector<uint64_t>* mapped = nullptr) {
  ThreadPool pool(2);
  KvCache cache = model.new_cache(64);
  std::vector<int32_t> input = {1, 17, 42, 99, 3, 250, 7, 8}, out;
  for (int64_t s = 0; s < steps; ++s) {
    SequenceInput in{input, &cache, LogitsMode::kLast};
    SequenceOutput o;
    model.forward({&in, 1}, {&o, 1}, pool);
    const int32_t tok = static_cast<int32_t>(std::max_element(o.logits.begin(), o.logits.end()) - o.logits.begin());
    out.push_back(tok);
    input.assign(1, tok);
    if (mapped) mapped->push_back(mapped_file_rss(model.store().file_paths()));
  }
  return out;
}

TEST(ExpertUsage, CountsAndSummaries) {
  ExpertUsage u(2, 4);
  const std::vector<int32_t> ids = {0, 3, 3, -1, 3, 7, 1};
  u.record(1, ids);
  u.record(5, ids);  // out of range: ignored
  EXPECT_EQ(u.count(1, 3), 3u);
  EXPECT_EQ(u.count(1, 0), 1u);
  EXPECT_EQ(u.count(0, 3), 0u);
  EXPECT_EQ(u.layer_total(1), 5u);
  const ExpertUseSummary s = summarize_layer(u, 1, 1);
  EXPECT_EQ(s.used, 3);
  EXPECT_DOUBLE_EQ(s.top_share, 3.0 / 5.0);
  u.reset();
  EXPECT_EQ(u.layer_total(1), 0u);
}

TEST(ExpertUsage, ModelCountsEveryRoutedChoice) {
  auto model = Model::load(testing::fixture_dir("q4_g64"));
  greedy(*model, 5);
  const ModelConfig& c = model->config();
  // 8 prompt tokens + 4 decoded, k choices each, in every sparse layer.
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    EXPECT_EQ(model->expert_usage().layer_total(l), static_cast<uint64_t>(12 * c.num_experts_per_tok)) << l;
}

TEST(Residency, RejectsABudgetBelowTheBase) {
  EditableModel m("q4_g64");
  auto model = Model::load(write_big_expert_model(m));
  ResidencyOptions o;
  o.budget_bytes = 100 * 1024;
  try {
    WeightResidency r(model->config(), model->weights(), model->expert_usage(), o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too small"), std::string::npos) << e.what();
  }
}

// The model's weights exceed the budget, yet it runs: identical tokens, and after every step
// the weight pages mapped in the process stay within the budget.
TEST(Residency, RunsAModelLargerThanItsBudget) {
  EditableModel m("q4_g64");
  const std::string dir = write_big_expert_model(m);
  std::vector<int32_t> want;
  uint64_t unbounded = 0;
  {
    auto model = Model::load(dir);
    std::vector<uint64_t> mapped;
    want = greedy(*model, 24, &mapped);
    unbounded = mapped.back();
  }
  auto model = Model::load(dir);
  ResidencyOptions o;
  o.budget_bytes = 8u << 20;
  o.refresh_every = 4;
  auto r = std::make_shared<WeightResidency>(model->config(), model->weights(), model->expert_usage(), o);
  model->set_residency(r);
  std::vector<uint64_t> mapped;
  EXPECT_EQ(greedy(*model, 24, &mapped), want);
  const ResidencyStats s = r->stats();
  ASSERT_GT(s.expert_bytes, 4 * o.budget_bytes) << "the model must not fit the budget";
  EXPECT_GT(unbounded, o.budget_bytes) << "without a budget the run maps more than the budget";
  // Slack: the embedding rows looked up and the safetensors header pages (not in the policy).
  const uint64_t slack = 256 * 1024;
  for (size_t i = 0; i < mapped.size(); ++i) EXPECT_LE(mapped[i], o.budget_bytes + slack) << "step " << i;
  EXPECT_GT(s.evictions, 0u);
  EXPECT_GT(s.hot_experts, 0);
  EXPECT_LE(s.base_bytes + s.reserve_bytes + s.hot_bytes, o.budget_bytes);
  std::cout << "mapped weight bytes: unbounded " << unbounded << ", budget " << o.budget_bytes << ", max "
            << *std::max_element(mapped.begin(), mapped.end()) << "; hot uses " << s.hot_uses << " / "
            << s.hot_uses + s.cold_uses << "\n";
}

// Zipf-distributed expert choices: the hot set must be exactly the most used experts that fit,
// and it must serve the share of a fresh trace that those experts carry.
TEST(Residency, KeepsTheMostUsedExpertsOfASkewedTrace) {
  EditableModel m("q4_g64");
  auto model = Model::load(write_big_expert_model(m));
  const int64_t L = model->config().num_hidden_layers, k = model->config().num_experts_per_tok;
  // Per layer, a different random permutation of Zipf(1.1) ranks over the 64 experts.
  std::mt19937 rng(11);
  std::vector<std::vector<int32_t>> perm(static_cast<size_t>(L));
  std::vector<double> weight(kExperts);
  for (int64_t i = 0; i < kExperts; ++i) weight[i] = 1.0 / std::pow(static_cast<double>(i + 1), 1.1);
  for (auto& p : perm) {
    p.resize(kExperts);
    std::iota(p.begin(), p.end(), 0);
    std::shuffle(p.begin(), p.end(), rng);
  }
  std::discrete_distribution<int> zipf(weight.begin(), weight.end());
  auto trace = [&](ExpertUsage& u, int64_t tokens, std::vector<std::vector<int32_t>>* ids) {
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t l = 0; l < L; ++l) {
        std::vector<int32_t> row;
        while (static_cast<int64_t>(row.size()) < k) {
          const int32_t e = perm[l][zipf(rng)];
          if (std::find(row.begin(), row.end(), e) == row.end()) row.push_back(e);
        }
        u.record(l, row);
        if (ids) ids->push_back(row);
      }
  };
  ExpertUsage usage(L, kExperts);
  trace(usage, 4000, nullptr);
  ResidencyOptions o;
  o.budget_bytes = 12u << 20;
  WeightResidency r(model->config(), model->weights(), usage, o);
  r.refresh();
  const ResidencyStats s = r.stats();
  ASSERT_GT(s.hot_experts, 0);
  ASSERT_LT(s.hot_experts, L * kExperts);
  // Every hot expert is used at least as often as every cold one (all experts have one size).
  uint64_t min_hot = UINT64_MAX, max_cold = 0;
  for (int64_t l = 0; l < L; ++l)
    for (int64_t e = 0; e < kExperts; ++e)
      (r.is_hot(l, e) ? min_hot = std::min(min_hot, usage.count(l, e)) : max_cold = std::max(max_cold, usage.count(l, e)));
  EXPECT_GE(min_hot, max_cold);
  // A fresh trace from the same distribution: the share served hot beats an unskewed choice by far.
  ExpertUsage fresh(L, kExperts);
  std::vector<std::vector<int32_t>> rows;
  trace(fresh, 2000, &rows);
  uint64_t hits = 0, uses = 0;
  for (size_t i = 0; i < rows.size(); ++i)
    for (int32_t e : rows[i]) hits += r.is_hot(static_cast<int64_t>(i % L), e), ++uses;
  const double hit = static_cast<double>(hits) / static_cast<double>(uses);
  const double uniform = static_cast<double>(s.hot_experts) / static_cast<double>(L * kExperts);
  std::cout << "hot experts " << s.hot_experts << " of " << L * kExperts << ": hit rate " << hit << " (uniform "
            << uniform << ")\n";
  EXPECT_GT(hit, 1.5 * uniform);
}

}  // namespace
}  // namespace qcoder
