// Sampler behaviour that the mlx-lm fixture cannot show: the draws themselves (statistics,
// seeding), greedy ties, edge cases and parameter validation.
#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace qcoder {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Runs f, expecting a qcoder::Error whose message contains `needle`.
template <typename F>
void expect_error(F f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no qcoder::Error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << needle;
  }
}

SamplingParams seeded(float temperature, uint64_t seed = 1234) {
  SamplingParams p;
  p.temperature = temperature;
  p.seed = seed;
  return p;
}

std::vector<int32_t> draw(Sampler& s, const std::vector<float>& logits, int n,
                          const std::vector<int32_t>& history = {}) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(logits, history));
  return out;
}

const std::vector<float> kLogits = {1.0f,  2.5f, -0.5f, 2.0f,  0.3f, 1.7f,
                                    -3.0f, 0.9f, 2.2f,  -1.0f, 0.0f, 1.2f};

// The distribution the sampler should draw from, computed here independently of the
// library's categorical code: softmax(logprobs * (1/temp)) over the entries the filters keep.
std::vector<double> expected_probs(const std::vector<float>& filtered, float temp) {
  double m = -INFINITY;
  for (float x : filtered) m = std::max(m, static_cast<double>(x) / temp);
  std::vector<double> p(filtered.size());
  double z = 0.0;
  for (size_t i = 0; i < p.size(); ++i) z += p[i] = std::exp(filtered[i] / temp - m);
  for (double& v : p) v /= z;
  return p;
}

// ---- greedy ----

TEST(Greedy, ArgmaxTakesTheLowestIndexOnTies) {
  Sampler s(SamplingParams{}, 6);
  const std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 0.0f, 3.0f};
  EXPECT_EQ(s.sample(logits, {}), 1);
  EXPECT_EQ(argmax(std::vector<float>{kNegInf, kNegInf, 0.5f, 0.5f}), 2);
}

TEST(Greedy, IgnoresFiltersAndSeedButNotPenalties) {
  SamplingParams p;
  p.top_k = 1;
  p.top_p = 0.1f;
  p.min_p = 0.9f;
  p.seed = 1;
  SamplingParams q = p;
  q.seed = 2;
  Sampler a(p, kLogits.size()), b(q, kLogits.size());
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(a.sample(kLogits, {}), 1);
    EXPECT_EQ(b.sample(kLogits, {}), 1);
  }
  p.repetition_penalty = 1.5f;  // 2.5/1.5 = 1.67 < 2.2 (token 8)
  Sampler c(p, kLogits.size());
  EXPECT_EQ(c.sample(kLogits, std::vector<int32_t>{1}), 8);
}

TEST(Greedy, Bf16LogprobsTieLikeMlx) {
  // mlx-lm with a bf16 model: logprobs = bf16(logit - bf16(lse)) ~ -6.4 where bf16 steps are
  // 1/32, so 0.498 and 0.5 become the same logprob and argmax takes index 0
  // (the fixture row v1000_bf16_flat_neartie is this case, run by mlx).
  std::vector<float> logits(1000, 0.0f);
  logits[0] = 0.498046875f;  // bf16(0.498)
  logits[1] = 0.5f;
  logits[2] = 0.490234375f;
  SamplingParams p;
  p.precision = LogprobPrecision::kBFloat16;
  EXPECT_EQ(Sampler(p, 1000).sample(logits, {}), 0);
  p.precision = LogprobPrecision::kFloat32;
  EXPECT_EQ(Sampler(p, 1000).sample(logits, {}), 1);
}

// ---- the categorical draw ----

// 20000 draws against the exact post-filter distribution. Pearson's chi-square over the kept
// tokens has k-1 degrees of freedom; with k <= 8, P(chi2_7 > 30) ~ 1e-4, and the seed is
// fixed, so this is deterministic and fails only if the sampler draws from the wrong
// distribution (a 10% relative error in a 0.1-probability token adds ~ 20 on its own).
TEST(Categorical, DrawsMatchTheFilteredDistribution) {
  SamplingParams p = seeded(0.8f, 42);
  p.top_p = 0.95f;
  p.min_p = 0.02f;
  p.top_k = 8;
  Sampler s(p, kLogits.size());

  std::vector<float> filtered = kLogits;
  SamplingScratch scratch;
  to_logprobs(filtered);
  apply_top_p(filtered, p.top_p, scratch);
  apply_min_p(filtered, p.min_p, 1, scratch);
  apply_top_k(filtered, p.top_k, scratch);
  const std::vector<double> want = expected_probs(filtered, p.temperature);

  constexpr int kDraws = 20000;
  std::vector<int> counts(kLogits.size(), 0);
  for (int i = 0; i < kDraws; ++i) ++counts[static_cast<size_t>(s.sample(kLogits, {}))];

  double chi2 = 0.0;
  int kept = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (filtered[i] == kNegInf) {
      EXPECT_EQ(counts[i], 0) << "masked token " << i << " was drawn";
      continue;
    }
    ++kept;
    const double e = want[i] * kDraws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    // Also per token: within 4.5 standard deviations of a binomial count.
    EXPECT_NEAR(counts[i], e, 4.5 * std::sqrt(e * (1 - want[i]))) << "token " << i;
  }
  EXPECT_GE(kept, 5);
  EXPECT_LE(kept, 8);
  EXPECT_LT(chi2, 30.0) << "chi-square over " << kept << " tokens";
}

TEST(Categorical, NeverPicksAZeroWeightEntry) {
  std::vector<double> w;
  const std::vector<float> scaled = {kNegInf, 0.0f, kNegInf, -1.0f, kNegInf};
  for (double u : {0.0, 1e-300, 0.25, 0.5, 0.7310585786, 0.999999999, std::nextafter(1.0, 0.0)}) {
    const int32_t i = categorical(scaled, u, w);
    EXPECT_TRUE(i == 1 || i == 3) << "u=" << u << " picked " << i;
  }
  EXPECT_EQ(categorical(scaled, 0.0, w), 1);
  EXPECT_EQ(categorical(scaled, std::nextafter(1.0, 0.0), w), 3);
}

TEST(Categorical, TemperatureSharpensAndFlattens) {
  std::vector<double> top;
  for (float t : {0.25f, 0.5f, 1.0f, 2.0f, 8.0f}) {
    std::vector<float> x = kLogits;
    to_logprobs(x);
    apply_temperature(x, t);
    top.push_back(categorical_probs(x)[1]);  // token 1 has the largest logit
  }
  for (size_t i = 1; i < top.size(); ++i) EXPECT_LT(top[i], top[i - 1]);
  EXPECT_GT(top.front(), 0.6);  // 2.5 vs 2.2 at t = 0.25: 0.67
  EXPECT_LT(top.back(), 2.0 / kLogits.size());

  // Near-zero temperature is effectively greedy; temperature scales logprobs, not probs.
  Sampler cold(seeded(0.01f), kLogits.size());
  for (int32_t t : draw(cold, kLogits, 500)) EXPECT_EQ(t, 1);
  std::vector<float> x = {std::log(0.5f), std::log(0.25f), std::log(0.25f)};
  apply_temperature(x, 0.5f);
  const std::vector<double> p = categorical_probs(x);  // p^2 renormalised: 2/3, 1/6, 1/6
  EXPECT_NEAR(p[0], 2.0 / 3.0, 1e-6);
  EXPECT_NEAR(p[1], 1.0 / 6.0, 1e-6);
}

// ---- seeding ----

TEST(Seeding, SameSeedSameSequenceDifferentSeedDifferent) {
  SamplingParams p = seeded(1.0f, 7);
  Sampler a(p, kLogits.size()), b(p, kLogits.size());
  const auto sa = draw(a, kLogits, 300), sb = draw(b, kLogits, 300);
  EXPECT_EQ(sa, sb);
  Sampler c(seeded(1.0f, 8), kLogits.size());
  EXPECT_NE(draw(c, kLogits, 300), sa);
}

TEST(Seeding, InterleavedSamplersMatchEachAlone) {
  SamplingParams pa = seeded(0.9f, 11), pb = seeded(1.3f, 12);
  pb.top_k = 5;
  pa.xtc_probability = 0.5f;  // XTC draws from the same per-sampler generator
  pa.xtc_threshold = 0.1f;
  std::vector<float> logits_b = kLogits;
  logits_b[4] = 2.4f;
  Sampler a_alone(pa, kLogits.size()), b_alone(pb, kLogits.size());
  const auto ra = draw(a_alone, kLogits, 200), rb = draw(b_alone, logits_b, 200);
  // Uneven interleaving: a, a, b, a, a, b, ... then b to the end.
  Sampler a(pa, kLogits.size()), b(pb, kLogits.size());
  std::vector<int32_t> ia, ib;
  while (ia.size() < 200 || ib.size() < 200) {
    for (int i = 0; i < 2 && ia.size() < 200; ++i) ia.push_back(a.sample(kLogits, {}));
    if (ib.size() < 200) ib.push_back(b.sample(logits_b, {}));
  }
  EXPECT_EQ(ia, ra);
  EXPECT_EQ(ib, rb);
}

TEST(Seeding, UnseededSamplersWork) {
  SamplingParams p;
  p.temperature = 1.0f;
  Sampler s(p, kLogits.size());
  for (int32_t t : draw(s, kLogits, 50)) EXPECT_TRUE(t >= 0 && t < 12);
}

// ---- edge cases ----

TEST(Edge, TopKAtOrAboveVocabKeepsEverything) {
  for (int k : {12, 13, 1000}) {
    std::vector<float> x = kLogits;
    SamplingScratch scratch;
    apply_top_k(x, k, scratch);
    EXPECT_EQ(x, kLogits) << k;
  }
  SamplingParams p = seeded(1.0f, 5), q = p;
  q.top_k = 100;
  Sampler a(p, kLogits.size()), b(q, kLogits.size());
  EXPECT_EQ(draw(a, kLogits, 100), draw(b, kLogits, 100));
}

TEST(Edge, TopPZeroIsOffAndTinyTopPKeepsTheTopTokens) {
  // make_sampler applies top_p only `if 0 < top_p < 1.0`: 0 is off, like 1.
  SamplingParams p0 = seeded(1.0f, 9), p1 = p0;
  p0.top_p = 0.0f;
  p1.top_p = 1.0f;
  Sampler a(p0, kLogits.size()), b(p1, kLogits.size());
  EXPECT_EQ(draw(a, kLogits, 100), draw(b, kLogits, 100));

  SamplingScratch scratch;
  std::vector<float> x = kLogits;
  to_logprobs(x);
  apply_top_p(x, 1e-7f, scratch);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i] != kNegInf, i == 1) << i;

  // Ties at the top all survive (mlx-lm masks `logprobs < threshold`).
  std::vector<float> t = {0.0f, 3.0f, 1.0f, 3.0f};
  to_logprobs(t);
  apply_top_p(t, 1e-7f, scratch);
  EXPECT_EQ(t[0], kNegInf);
  EXPECT_NE(t[1], kNegInf);
  EXPECT_EQ(t[2], kNegInf);
  EXPECT_NE(t[3], kNegInf);
}

TEST(Edge, MinPIsRelativeToTheTopToken) {
  // probs 0.5, 0.3, 0.15, 0.05: min_p 0.2 keeps p >= 0.1, min_p 0.61 keeps p >= 0.305.
  const std::vector<float> lp = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingScratch scratch;
  std::vector<float> x = lp;
  apply_min_p(x, 0.2f, 1, scratch);
  EXPECT_EQ(x[2], lp[2]);
  EXPECT_EQ(x[3], kNegInf);
  x = lp;
  apply_min_p(x, 0.61f, 1, scratch);
  EXPECT_EQ(x[1], kNegInf);
  x = lp;
  apply_min_p(x, 0.61f, 3, scratch);  // min_tokens_to_keep rescues the top three
  EXPECT_EQ(x[1], lp[1]);
  EXPECT_EQ(x[2], lp[2]);
  EXPECT_EQ(x[3], kNegInf);
}

TEST(Edge, OnlyOneFiniteLogit) {
  std::vector<float> logits(40, kNegInf);
  logits[23] = -5.0f;
  for (float temp : {0.0f, 0.7f, 3.0f}) {
    SamplingParams p = seeded(temp);
    p.top_p = 0.5f;
    p.min_p = 0.3f;
    p.top_k = 3;
    p.repetition_penalty = 1.3f;
    p.presence_penalty = 0.5f;
    Sampler s(p, logits.size());
    for (int32_t t : draw(s, logits, 50, {23, 23, 4})) EXPECT_EQ(t, 23);
    EXPECT_EQ(s.logprobs()[23], 0.0f);
  }
}

TEST(Edge, AllLogitsBannedIsAnError) {
  std::vector<float> logits = {kNegInf, 1.0f, kNegInf};
  SamplingParams p = seeded(1.0f);
  p.logit_bias = {{1, kNegInf}};
  Sampler s(p, 3);
  expect_error([&] { s.sample(logits, {}); }, "every logit is -inf");
}

TEST(Edge, BadInputsAreErrors) {
  Sampler s(seeded(1.0f), 4);
  const std::vector<float> ok = {0.0f, 1.0f, 2.0f, 3.0f};
  expect_error(
      [&] {
        s.sample(std::vector<float>{1.0f, 2.0f}, {});
      },
      "expected the vocabulary size 4");
  expect_error([&] { s.sample(std::vector<float>{0.0f, NAN, 1.0f, 2.0f}, {}); }, "logit 1");
  expect_error([&] { s.sample(std::vector<float>{0.0f, 1.0f, INFINITY, 2.0f}, {}); }, "logit 2");
  SamplingParams p = seeded(1.0f);
  p.presence_penalty = 0.5f;
  Sampler t(p, 4);
  expect_error([&] { t.sample(ok, std::vector<int32_t>{1, 4}); }, "token id 4");
  expect_error([&] { t.sample(ok, std::vector<int32_t>{-1}); }, "token id -1");
  // Without penalties the history is not read (as in mlx-lm).
  EXPECT_NO_THROW(s.sample(ok, std::vector<int32_t>{99}));
}

TEST(Edge, LogitBiasOutOfRangeIsAnError) {
  SamplingParams p;
  p.logit_bias = {{3, 1.0f}, {10, 2.0f}};
  expect_error([&] { Sampler s(p, 10); }, "logit_bias has token id 10 outside the vocabulary");
  p.logit_bias = {{-2, 1.0f}};
  expect_error([&] { Sampler s(p, 10); }, "token id -2");
  std::vector<float> x(10, 0.0f);
  expect_error(
      [&] {
        apply_logit_bias(x, std::vector<std::pair<int32_t, float>>{{12, 1.0f}});
      },
      "logit_bias: token id 12");
}

// ---- penalties over the history window ----

TEST(Penalties, WindowAndCounts) {
  const std::vector<int32_t> history = {2, 2, 2, 0, 1, 1};
  // Window of the last 3 tokens: {0, 1, 1}.
  std::vector<float> x = {1.0f, -1.0f, 4.0f, 2.0f};
  apply_repetition_penalty(x, history, 2.0f, 3);
  EXPECT_EQ(x, (std::vector<float>{0.5f, -2.0f, 4.0f, 2.0f}));
  x = {1.0f, -1.0f, 4.0f, 2.0f};
  apply_presence_penalty(x, history, 0.5f, 3);  // once per distinct token
  EXPECT_EQ(x, (std::vector<float>{0.5f, -1.5f, 4.0f, 2.0f}));
  x = {1.0f, -1.0f, 4.0f, 2.0f};
  apply_frequency_penalty(x, history, 0.5f, 3);  // once per occurrence
  EXPECT_EQ(x, (std::vector<float>{0.5f, -2.0f, 4.0f, 2.0f}));
  // context 0 = the whole history (Python tokens[-0:]).
  x = {1.0f, -1.0f, 4.0f, 2.0f};
  apply_frequency_penalty(x, history, 0.5f, 0);
  EXPECT_EQ(x, (std::vector<float>{0.5f, -2.0f, 2.5f, 2.0f}));
}

TEST(Penalties, SamplerLogprobsSeeTheProcessors) {
  SamplingParams p = seeded(1.0f);
  p.logit_bias = {{0, 1.0f}, {0, 0.5f}};  // repeated ids add up
  p.frequency_penalty = 0.25f;
  Sampler s(p, 3);
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  s.sample(logits, std::vector<int32_t>{2, 2});
  std::vector<float> want = {1.5f, 1.0f, 1.5f};
  to_logprobs(want);
  ASSERT_EQ(s.logprobs().size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(s.logprobs()[i], want[i]);
}

// ---- XTC through the sampler ----

TEST(Xtc, AlwaysAppliedDropsAllButTheWeakestAboveThreshold) {
  SamplingParams p = seeded(1.0f, 3);
  p.xtc_probability = 1.0f;
  p.xtc_threshold = 0.1f;
  Sampler s(p, kLogits.size());
  std::vector<float> x = kLogits;
  to_logprobs(x);
  apply_xtc(x, 0.1f, {});
  std::map<int32_t, int> seen;
  for (int32_t t : draw(s, kLogits, 2000)) ++seen[t];
  for (const auto& [t, n] : seen) EXPECT_NE(x[static_cast<size_t>(t)], kNegInf) << t;
  EXPECT_EQ(seen.count(1), 0u);  // the most likely token is excluded
}

// ---- parameter validation ----

TEST(Validation, RejectsOutOfRangeParameters) {
  auto bad = [](auto mutate, const std::string& needle) {
    SamplingParams p;
    mutate(p);
    expect_error([&] { validate_sampling_params(p, 100); }, needle);
    expect_error([&] { Sampler s(p, 100); }, needle);
  };
  bad([](SamplingParams& p) { p.temperature = -0.5f; }, "temperature must be finite and >= 0");
  bad([](SamplingParams& p) { p.temperature = NAN; }, "temperature");
  bad([](SamplingParams& p) { p.temperature = INFINITY; }, "temperature");
  bad([](SamplingParams& p) { p.temperature = 1e-45f; }, "temperature is too small");
  bad([](SamplingParams& p) { p.top_p = -0.1f; }, "top_p must be in [0, 1]");
  bad([](SamplingParams& p) { p.top_p = 1.5f; }, "top_p must be in [0, 1]");
  bad([](SamplingParams& p) { p.top_p = NAN; }, "top_p");
  bad([](SamplingParams& p) { p.top_k = -1; }, "top_k must be >= 0");
  bad([](SamplingParams& p) { p.min_p = 1.01f; }, "min_p must be in [0, 1]");
  bad([](SamplingParams& p) { p.min_tokens_to_keep = 0; }, "min_tokens_to_keep must be >= 1");
  bad([](SamplingParams& p) { p.xtc_probability = 2.0f; }, "xtc_probability");
  bad([](SamplingParams& p) { p.xtc_threshold = 0.6f; }, "xtc_threshold must be in [0, 0.5]");
  bad([](SamplingParams& p) { p.xtc_special_tokens = {100}; },
      "xtc_special_tokens has token id 100");
  bad([](SamplingParams& p) { p.repetition_penalty = -1.0f; }, "repetition_penalty");
  bad([](SamplingParams& p) { p.presence_penalty = NAN; }, "presence_penalty must be finite");
  bad([](SamplingParams& p) { p.frequency_penalty = INFINITY; }, "frequency_penalty");
  bad([](SamplingParams& p) { p.repetition_context_size = -1; }, "repetition_context_size");
  bad([](SamplingParams& p) { p.presence_context_size = -3; }, "presence_context_size");
  bad([](SamplingParams& p) { p.frequency_context_size = -20; }, "frequency_context_size");
  bad([](SamplingParams& p) { p.logit_bias = {{1, NAN}}; }, "logit_bias value for token 1");
  bad([](SamplingParams& p) { p.logit_bias = {{1, INFINITY}}; }, "must be finite or -inf");
  expect_error([] { Sampler s(SamplingParams{}, 0); }, "vocabulary size 0");
}

TEST(Validation, AcceptsTheBoundaries) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.top_p = 0.0f;
  p.min_p = 1.0f;
  p.top_k = 0;
  p.xtc_probability = 1.0f;
  p.xtc_threshold = 0.5f;
  p.repetition_penalty = 0.0f;
  p.presence_penalty = -2.0f;
  p.frequency_penalty = -2.0f;
  p.repetition_context_size = 0;
  p.logit_bias = {{0, kNegInf}, {99, -100.0f}};
  EXPECT_NO_THROW(validate_sampling_params(p, 100));
  p.top_p = 1.0f;
  p.top_k = 1000000;
  EXPECT_NO_THROW(validate_sampling_params(p, 100));
}

}  // namespace
}  // namespace qcoder
