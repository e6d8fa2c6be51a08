// Checks each sampling building block against mlx-lm 0.32.2's own functions, run by
// tests/reference/make_sampling_refs.py into tests/fixtures/sampling/sampling_refs.json.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "sampling/sampler.h"

namespace qcoder {
namespace {

using nlohmann::json;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

const json& fixture() {
  static const json doc = [] {
    const std::string path =
        std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/sampling/sampling_refs.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return json::parse(in);
  }();
  return doc;
}

std::vector<float> unhex(const std::string& s) {
  if (s.size() % 8 != 0) throw std::runtime_error("bad hex vector length");
  std::vector<float> out(s.size() / 8);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = bits_to_f32(static_cast<uint32_t>(std::stoul(s.substr(8 * i, 8), nullptr, 16)));
  }
  return out;
}

LogprobPrecision precision_of(const json& j) {
  return j.at("dtype").get<std::string>() == "bfloat16" ? LogprobPrecision::kBFloat16
                                                        : LogprobPrecision::kFloat32;
}

std::string kept_mask(const std::vector<float>& v) {
  std::string s;
  for (float x : v) s += x == kNegInf ? '0' : '1';
  return s;
}

// The kept values, sorted (the only thing defined when mlx-lm's argpartition breaks a tie).
std::vector<float> kept_values(const std::vector<float>& input, const std::string& mask) {
  std::vector<float> v;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i] == '1') v.push_back(input[i]);
  }
  std::sort(v.begin(), v.end());
  return v;
}

// Filters only mask: every kept entry must still hold its input value.
void expect_filter_matches(const std::vector<float>& input, const std::vector<float>& ours,
                           const json& ref, const std::string& what) {
  const std::string want = ref.at("kept").get<std::string>();
  const std::string got = kept_mask(ours);
  for (size_t i = 0; i < ours.size(); ++i) {
    if (ours[i] != kNegInf) {
      ASSERT_EQ(ours[i], input[i]) << what << " changed entry " << i;
    }
  }
  if (ref.at("boundary_tie").get<bool>()) {
    EXPECT_EQ(kept_values(input, got), kept_values(input, want)) << what << " (tied boundary)";
  } else {
    EXPECT_EQ(got, want) << what;
  }
}

TEST(SamplingRefs, FixtureIsFromThePinnedPeer) {
  const json& meta = fixture().at("meta");
  EXPECT_EQ(meta.at("mlx_lm_version").get<std::string>(), "0.32.2");
  EXPECT_GE(fixture().at("rows").size(), 15u);
  EXPECT_GE(fixture().at("processors").size(), 20u);
}

// generate_step: logprobs = logits - logsumexp(logits); greedy_sampler = argmax(logprobs).
TEST(SamplingRefs, LogprobsAndGreedyMatchMlx) {
  for (const json& row : fixture().at("rows")) {
    const std::string name = row.at("name");
    const LogprobPrecision prec = precision_of(row);
    std::vector<float> lp = unhex(row.at("logits"));
    const std::vector<float> want = unhex(row.at("logprobs"));
    float max_abs_logit = 0.0f;
    for (float x : lp) {
      if (std::isfinite(x)) max_abs_logit = std::max(max_abs_logit, std::fabs(x));
    }
    to_logprobs(lp, prec);
    // float32: one rounding of `logit - lse` each side, so within an ulp of the logits'
    // magnitude (the 3e4-offset rows have ulp 2e-3) plus the lse's own 1e-6.
    // bfloat16: MLX rounds lse and the difference to bf16; a one-ulp disagreement in the lse
    // would shift every entry by a bf16 ulp of the result, which is not seen.
    const float tol = prec == LogprobPrecision::kBFloat16
                          ? 0.0f
                          : 1e-5f + 2.0f * std::ldexp(1.0f, std::ilogb(max_abs_logit + 1) - 23);
    for (size_t i = 0; i < lp.size(); ++i) {
      if (want[i] == kNegInf) {
        EXPECT_EQ(lp[i], kNegInf) << name << " entry " << i;
      } else {
        EXPECT_NEAR(lp[i], want[i], tol) << name << " entry " << i;
      }
    }
    EXPECT_EQ(argmax(lp), row.at("argmax").get<int32_t>()) << name;
    EXPECT_EQ(argmax(want), row.at("argmax").get<int32_t>()) << name;
  }
}

TEST(SamplingRefs, FiltersMatchMlx) {
  SamplingScratch scratch;
  int checked = 0;
  for (const json& row : fixture().at("rows")) {
    const std::string name = row.at("name");
    const LogprobPrecision prec = precision_of(row);
    const std::vector<float> input = unhex(row.at("logprobs"));
    for (const json& f : row.at("filters")) {
      const std::string op = f.at("op");
      std::vector<float> x = input;
      std::string what = name + " " + f.dump().substr(0, 80);
      if (op == "top_p") {
        apply_top_p(x, f.at("top_p").get<float>(), scratch);
      } else if (op == "min_p") {
        apply_min_p(x, f.at("min_p").get<float>(), f.at("min_tokens_to_keep").get<int>(), scratch,
                    prec);
      } else if (op == "top_k") {
        apply_top_k(x, f.at("top_k").get<int>(), scratch);
      } else if (op == "xtc") {
        apply_xtc(x, f.at("threshold").get<float>(), f.at("special").get<std::vector<int32_t>>(),
                  prec);
      } else if (op == "chain") {
        const float top_p = f.at("top_p"), min_p = f.at("min_p"), temp = f.at("temp");
        const int top_k = f.at("top_k");
        if (top_p > 0.0f && top_p < 1.0f) apply_top_p(x, top_p, scratch);
        if (min_p != 0.0f) apply_min_p(x, min_p, 1, scratch, prec);
        if (top_k > 0) apply_top_k(x, top_k, scratch);
        expect_filter_matches(input, x, f, what);
        if (f.at("boundary_tie").get<bool>()) continue;
        // categorical_sampling's argument, and the distribution it samples.
        const std::vector<float> want = unhex(f.at("scaled"));
        apply_temperature(x, temp, prec);
        for (size_t i = 0; i < x.size(); ++i) {
          if (want[i] == kNegInf) {
            EXPECT_EQ(x[i], kNegInf) << what;
          } else {
            EXPECT_NEAR(x[i], want[i], 1e-6f * std::max(1.0f, std::fabs(want[i]))) << what;
          }
        }
        const std::vector<double> probs = categorical_probs(x);
        double m = -INFINITY, z = 0.0;
        for (float w : want) m = std::max(m, static_cast<double>(w));
        for (float w : want) z += std::exp(w - m);
        for (size_t i = 0; i < x.size(); ++i) {
          EXPECT_NEAR(probs[i], std::exp(want[i] - m) / z, 1e-6) << what << " prob " << i;
        }
        ++checked;
        continue;
      } else {
        FAIL() << "unknown op " << op;
      }
      expect_filter_matches(input, x, f, what);
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(SamplingRefs, LogitsProcessorsMatchMlx) {
  for (const json& c : fixture().at("processors")) {
    const std::string name = c.at("name");
    const json& p = c.at("params");
    SamplingParams params;
    params.precision = precision_of(c);
    if (p.contains("logit_bias")) {
      for (const json& kv : p.at("logit_bias")) {
        params.logit_bias.emplace_back(kv.at(0).get<int32_t>(),
                                       kv.at(1).is_null() ? kNegInf : kv.at(1).get<float>());
      }
    }
    params.repetition_penalty = p.value("repetition_penalty", 0.0f);
    params.presence_penalty = p.value("presence_penalty", 0.0f);
    params.frequency_penalty = p.value("frequency_penalty", 0.0f);
    params.repetition_context_size = p.value("repetition_context_size", 20);
    params.presence_context_size = p.value("presence_context_size", 20);
    params.frequency_context_size = p.value("frequency_context_size", 20);
    const size_t vocab = c.at("vocab");
    validate_sampling_params(params, vocab);

    std::vector<float> x = unhex(c.at("logits"));
    const std::vector<float> want = unhex(c.at("out"));
    const std::vector<int32_t> history = c.at("history").get<std::vector<int32_t>>();
    apply_logits_processors(x, history, params);
    for (size_t i = 0; i < x.size(); ++i) {
      if (params.precision == LogprobPrecision::kBFloat16 || !std::isfinite(want[i])) {
        EXPECT_EQ(x[i], want[i]) << name << " entry " << i;
      } else {
        EXPECT_NEAR(x[i], want[i], 1e-5f * std::max(1.0f, std::fabs(want[i])))
            << name << " entry " << i;
      }
    }
  }
}

}  // namespace
}  // namespace qcoder
