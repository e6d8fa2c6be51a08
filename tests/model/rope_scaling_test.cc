// YaRN RoPE scaling (issue 8 item 1): the product's frequencies, cos/sin and attention factor
// against (a) an independent float64 implementation of the formulas written here, (b)
// transformers' numbers committed in tests/reference/yarn_reference.json, and (c) the model:
// a YaRN config changes the logits, --rope-scaling none gives the plain (mlx-lm) result bitwise.
#include "model/rope_scaling.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors_writer.h"
#include "kernels/reference/ops.h"
#include "model/model.h"

namespace qcoder {
namespace {

using nlohmann::json;

const std::string kSrc = QCODER_SOURCE_DIR;
const std::string k480 = kSrc + "/tests/fixtures/configs/qwen3-coder-480b-a35b-4bit";
const std::string kFixture = kSrc + "/tests/fixtures/models/q4_g64";

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

json config_with(const json& rope_scaling, int64_t head_dim = 128, double theta = 1e7, int64_t max_pos = 262144) {
  json j = read_json(k480 + "/config.json");
  j["head_dim"] = head_dim;
  j["rope_theta"] = theta;
  j["max_position_embeddings"] = max_pos;
  j["rope_scaling"] = rope_scaling;
  return j;
}

json yarn(double factor, int64_t original) {
  return {{"rope_type", "yarn"}, {"factor", factor}, {"original_max_position_embeddings", original}};
}

json with(json b, const char* k1, const json& v1, const char* k2 = nullptr, const json& v2 = nullptr) {
  b[k1] = v1;
  if (k2) b[k2] = v2;
  return b;
}

std::string error_of(const json& j, const RopeOptions& o = {}) {
  try {
    parse_model_config(j, "config.json", o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// --- (a) an independent float64 implementation, straight from the YaRN paper's formulas as
// transformers writes them (spec/model.md §3.3). Nothing here calls the product.
struct F64Yarn {
  std::vector<double> inv_freq;
  double attention_factor = 1;
};

F64Yarn f64_yarn(int d, double theta, double s, double l0, double beta_fast = 32, double beta_slow = 1,
                 bool truncate = true) {
  auto corr = [&](double r) { return d * std::log(l0 / (r * 2 * std::numbers::pi)) / (2 * std::log(theta)); };
  double lo = corr(beta_fast), hi = corr(beta_slow);
  if (truncate) lo = std::floor(lo), hi = std::ceil(hi);
  lo = lo < 0 ? 0 : lo;
  hi = hi > d - 1 ? d - 1 : hi;
  if (lo == hi) hi += 0.001;
  F64Yarn y;
  for (int i = 0; i < d / 2; ++i) {
    double ramp = (i - lo) / (hi - lo);
    ramp = ramp < 0 ? 0 : (ramp > 1 ? 1 : ramp);
    const double base = std::pow(theta, -(2.0 * i) / d);
    // ramp 0: extrapolation (the original frequency); ramp 1: interpolation (divided by s).
    y.inv_freq.push_back(base * (1 - ramp) + base / s * ramp);
  }
  y.attention_factor = s > 1 ? 1 + 0.1 * std::log(s) : 1;
  return y;
}

std::vector<int64_t> test_positions() {
  std::vector<int64_t> p = {0, 1, 2, 3, 7, 100, 4095, 4096, 32767, 262143, 262144, 524287, 1 << 20, (1 << 20) - 1};
  std::mt19937_64 rng(42);
  for (int i = 0; i < 64; ++i) p.push_back(static_cast<int64_t>(rng() % ((1u << 20) + 1)));
  return p;
}

void expect_matches_f64(const ModelConfig& c, const F64Yarn& want) {
  const std::vector<double> inv = rope_inv_freq(c);
  const double af = rope_attention_factor(c);
  ASSERT_EQ(inv.size(), want.inv_freq.size());
  EXPECT_NEAR(af, want.attention_factor, 1e-15);
  for (size_t i = 0; i < inv.size(); ++i) EXPECT_NEAR(inv[i], want.inv_freq[i], 1e-15 * want.inv_freq[i]) << i;
  const int64_t half = static_cast<int64_t>(inv.size());
  std::vector<float> cs(half), sn(half);
  for (int64_t pos : test_positions()) {
    ref::rope_angles(pos, half, inv.data(), af, cs.data(), sn.data());
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(pos) * want.inv_freq[i];
      // The angle itself: relative agreement to double rounding, even at 2^20.
      ASSERT_NEAR(static_cast<double>(pos) * inv[i], angle, 2e-15 * std::max(1.0, angle)) << pos << " " << i;
      // cos/sin x attention factor, rounded once to float (plus the double angle's error).
      const double tol = 1.2e-7 * want.attention_factor + 1e-9;
      ASSERT_NEAR(cs[i], std::cos(angle) * want.attention_factor, tol) << pos << " " << i;
      ASSERT_NEAR(sn[i], std::sin(angle) * want.attention_factor, tol) << pos << " " << i;
    }
  }
}

TEST(RopeScaling, Qwen1MMatchesFloat64Formulas) {
  const ModelConfig c = parse_model_config(config_with(yarn(4, 262144)), "x");
  ASSERT_TRUE(c.rope_scaling);
  const F64Yarn want = f64_yarn(128, 1e7, 4, 262144);
  expect_matches_f64(c, want);
  // spec §3.3: low = 28, high = 43, mscale 1.13863, logits x 1.29648.
  EXPECT_NEAR(want.attention_factor, 1.13863, 5e-6);
  EXPECT_NEAR(want.attention_factor * want.attention_factor, 1.29648, 5e-6);
  const std::vector<double> inv = rope_inv_freq(c);
  for (int i = 0; i <= 28; ++i) EXPECT_DOUBLE_EQ(inv[i], std::pow(1e7, -2.0 * i / 128)) << i;  // extrapolated
  for (int i = 43; i < 64; ++i) EXPECT_DOUBLE_EQ(inv[i], std::pow(1e7, -2.0 * i / 128) / 4) << i;  // interpolated
  EXPECT_EQ(usable_context(c), 1048576);
}

TEST(RopeScaling, OtherShapesMatchFloat64Formulas) {
  expect_matches_f64(parse_model_config(config_with(yarn(2, 4096), 64, 1e7, 4096), "x"), f64_yarn(64, 1e7, 2, 4096));
  json b = yarn(8, 32768);
  b["beta_fast"] = 16;
  b["beta_slow"] = 2;
  b["truncate"] = false;
  expect_matches_f64(parse_model_config(config_with(b, 128, 1e6, 32768), "x"), f64_yarn(128, 1e6, 8, 32768, 16, 2, false));
}

TEST(RopeScaling, NoScalingIsBitwiseThePlainAngles) {
  const ModelConfig c = load_model_config(k480);
  ASSERT_FALSE(c.rope_scaling);
  EXPECT_EQ(rope_attention_factor(c), 1.0);
  const std::vector<double> inv = rope_inv_freq(c);
  std::vector<float> a(64), b(64), x(64), y(64);
  for (int64_t pos : test_positions()) {
    ref::rope_angles(pos, 128, 1e7, a.data(), b.data());  // the pre-YaRN function
    ref::rope_angles(pos, 64, inv.data(), 1.0, x.data(), y.data());
    ASSERT_EQ(0, std::memcmp(a.data(), x.data(), 64 * sizeof(float))) << pos;
    ASSERT_EQ(0, std::memcmp(b.data(), y.data(), 64 * sizeof(float))) << pos;
  }
  EXPECT_EQ(usable_context(c), 262144);
}

// --- (b) transformers' numbers (tests/reference/make_yarn_reference.py).
TEST(RopeScaling, MatchesTransformersReference) {
  const json ref = read_json(kSrc + "/tests/reference/yarn_reference.json");
  ASSERT_GE(ref["cases"].size(), 4u);
  for (const json& k : ref["cases"]) {
    SCOPED_TRACE(k["name"].get<std::string>());
    const ModelConfig c = parse_model_config(
        config_with(k["rope_scaling"], k["head_dim"], k["rope_theta"], k["max_position_embeddings"]), "x");
    ASSERT_TRUE(c.rope_scaling);
    EXPECT_NEAR(rope_attention_factor(c), k["attention_factor"].get<double>(), 1e-12);
    const std::vector<double> inv = rope_inv_freq(c);
    ASSERT_EQ(inv.size(), k["inv_freq"].size());
    for (size_t i = 0; i < inv.size(); ++i) {
      const double want = k["inv_freq"][i].get<double>();
      // transformers works in float32: theta ** (2i/d) is exp2 of a float32 product, whose
      // relative error grows with |ln inv_freq|, plus a few ulps for the ramp and the mix.
      EXPECT_NEAR(inv[i], want, (std::fabs(std::log(want)) + 8) * 6e-8 * want) << i;
    }
  }
}

// --- parsing and options.
TEST(RopeScaling, ConfigErrorsAreClear) {
  struct Case {
    json block;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{{"rope_type", "linear"}, {"factor", 2.0}}, "\"linear\" is not supported"},
      {{{"type", "dynamic"}, {"factor", 2.0}}, "--rope-scaling none"},
      {{{"factor", 4.0}}, "rope_type"},
      {"yarn", "must be an object"},
      {yarn(0.5, 262144), "factor must be"},
      {{{"rope_type", "yarn"}, {"original_max_position_embeddings", 262144}}, "needs \"factor\""},
      {{{"rope_type", "yarn"}, {"factor", "4"}}, "finite number"},
      {yarn(4, 0), "original_max_position_embeddings"},
      {yarn(4, -5), "original_max_position_embeddings"},
      {with(yarn(4, 262144), "beta_fast", 1, "beta_slow", 32), "beta_fast"},
      {with(yarn(4, 262144), "attention_factor", -1.0), "attention_factor"},
      {with(yarn(4, 262144), "truncate", "yes"), "truncate"},
      {with(yarn(4, 262144), "partial_rotary_factor", 0.5), "partial_rotary_factor"},
      {with(yarn(4, 262144), "rope_theta", 1e6), "rope_theta"},
  };
  for (const Case& k : cases) {
    const std::string e = error_of(config_with(k.block));
    EXPECT_NE(e.find(k.expect), std::string::npos) << k.block.dump() << " -> " << e;
    EXPECT_NE(e.find("rope_scaling"), std::string::npos) << e;
  }
  // "default" is no scaling; null factor is max_position_embeddings / original.
  EXPECT_FALSE(parse_model_config(config_with({{"rope_type", "default"}}), "x").rope_scaling);
  const ModelConfig n = parse_model_config(
      config_with({{"rope_type", "yarn"}, {"factor", nullptr}, {"original_max_position_embeddings", 65536}}), "x");
  EXPECT_EQ(n.rope_scaling->factor, 4.0);
  // transformers 5 writes the block as rope_parameters.
  json v5 = config_with(nullptr);
  v5["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 262144},
                           {"rope_theta", 1e7}};
  EXPECT_EQ(parse_model_config(v5, "x").rope_scaling->factor, 4.0);
}

TEST(RopeScaling, CommandLineOptions) {
  using S = RopeOptions::Source;
  const json with_yarn = config_with(yarn(4, 262144));
  // none: the block is ignored, even an unsupported one (as mlx-lm).
  EXPECT_FALSE(parse_model_config(with_yarn, "x", {S::kNone, {}, {}}).rope_scaling);
  EXPECT_FALSE(parse_model_config(config_with({{"rope_type", "linear"}}), "x", {S::kNone, {}, {}}).rope_scaling);
  // yarn from the command line on a config without a block; the original defaults to
  // max_position_embeddings.
  const ModelConfig y = parse_model_config(config_with(nullptr), "x", {S::kYarn, 2.0, {}});
  ASSERT_TRUE(y.rope_scaling);
  EXPECT_EQ(y.rope_scaling->factor, 2.0);
  EXPECT_EQ(y.rope_scaling->original_max_position_embeddings, 262144);
  EXPECT_EQ(usable_context(y), 524288);
  // yarn over the config's block: each flag replaces one value.
  const ModelConfig z = parse_model_config(with_yarn, "x", {S::kYarn, {}, 131072});
  EXPECT_EQ(z.rope_scaling->factor, 4.0);
  EXPECT_EQ(z.rope_scaling->original_max_position_embeddings, 131072);
  // The same scaling from the config or the command line gives the same frequencies.
  EXPECT_EQ(rope_inv_freq(parse_model_config(config_with(nullptr), "x", {S::kYarn, 4.0, 262144})),
            rope_inv_freq(parse_model_config(with_yarn, "x")));
  EXPECT_NE(error_of(config_with(nullptr), {S::kYarn, {}, {}}).find("--rope-factor"), std::string::npos);
  EXPECT_NE(error_of(config_with(nullptr), {S::kYarn, 0.25, {}}).find("factor"), std::string::npos);
  EXPECT_NE(error_of(with_yarn, {S::kConfig, 2.0, {}}).find("--rope-scaling yarn"), std::string::npos);
  EXPECT_NE(error_of(with_yarn, {S::kNone, {}, 1000}).find("--rope-scaling yarn"), std::string::npos);
}

// --- (c) the model: a fixture with a YaRN block in a temporary copy of its config.
std::vector<float> logits_of(const std::string& dir, const RopeOptions& o, int n_tokens) {
  auto model = Model::load(dir, o);
  ThreadPool pool(2);
  std::vector<int32_t> ids;
  for (int i = 0; i < n_tokens; ++i) ids.push_back((i * 37 + 11) % 512);
  KvCache cache = model->new_cache(n_tokens);
  SequenceInput in{ids, &cache, LogitsMode::kAll};
  SequenceOutput out;
  model->forward({&in, 1}, {&out, 1}, pool);
  return out.logits;
}

TEST(RopeScaling, ModelLogits) {
  testing::TempDir tmp;
  for (const auto& e : std::filesystem::directory_iterator(kFixture))
    if (e.is_regular_file()) std::filesystem::copy_file(e.path(), tmp.path() / e.path().filename());
  json j = read_json(kFixture + "/config.json");
  j["rope_scaling"] = yarn(4, 1024);  // head_dim 64, theta 1e7: dims 0..13 extrapolated
  std::ofstream(tmp.path() / "config.json") << j.dump();
  const std::string dir = tmp.path().string();
  constexpr int kTokens = 48;

  const std::vector<float> plain = logits_of(kFixture, {}, kTokens);
  const std::vector<float> none = logits_of(dir, {RopeOptions::Source::kNone, {}, {}}, kTokens);
  const std::vector<float> scaled = logits_of(dir, {}, kTokens);
  const std::vector<float> cli = logits_of(kFixture, {RopeOptions::Source::kYarn, 4.0, 1024}, kTokens);
  ASSERT_EQ(plain.size(), none.size());
  EXPECT_EQ(0, std::memcmp(plain.data(), none.data(), plain.size() * sizeof(float)));  // bitwise
  EXPECT_EQ(0, std::memcmp(scaled.data(), cli.data(), plain.size() * sizeof(float)));
  double max_diff = 0;
  for (size_t i = 0; i < plain.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(plain[i]) - scaled[i]));
  EXPECT_GT(max_diff, 1e-3);  // the attention factor alone changes every attention score
  // A default cache holds the usable context: 4 x 4096 with YaRN over the fixture's 4096.
  EXPECT_EQ(Model::load(kFixture)->new_cache().max_tokens(), 4096);
  EXPECT_EQ(Model::load(kFixture, {RopeOptions::Source::kYarn, 4.0, {}})->new_cache().max_tokens(), 16384);
}

}  // namespace
}  // namespace qcoder
