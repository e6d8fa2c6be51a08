#include "model/footprint.h"

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace qcoder {
namespace {

const std::string kConfigs = std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/configs/";

TEST(Footprint, Real480BConfig) {
  const ModelConfig c = load_model_config(kConfigs + "qwen3-coder-480b-a35b-4bit");
  // spec/model.md §4.5: 270,088,244,224 bytes at 4-bit g64 (router 4-bit too).
  EXPECT_EQ(config_weight_bytes(c), 270088244224ull);
  EXPECT_EQ(kv_bytes_per_token(c, 16), 253952ull);  // 2 x 62 x 8 x 128 x 2
  const Footprint f = estimate_footprint(c, nullptr, 262144, 16);
  EXPECT_EQ(f.kv_bytes_at_ctx, 253952ull * 262144);
  EXPECT_EQ(f.total_bytes, f.weights_bytes + f.kv_bytes_at_ctx + f.activation_bytes);
  EXPECT_FALSE(f.tensor_count.has_value());
}

TEST(Footprint, RouterAt8BitsAndOtherWidths) {
  std::ifstream in(kConfigs + "qwen3-coder-480b-a35b-4bit/config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  for (int l = 0; l < 62; ++l)
    j["quantization"]["model.layers." + std::to_string(l) + ".mlp.gate"] = {{"group_size", 64}, {"bits", 8}};
  EXPECT_EQ(config_weight_bytes(parse_model_config(j, "x")), 270118718464ull);  // spec §4.5
  const std::vector<std::pair<int, uint64_t>> by_bits = {
      {2, 150049721344ull}, {3, 210068982784ull}, {5, 330107505664ull},
      {6, 390126767104ull}, {8, 510165289984ull}};
  for (auto [bits, want] : by_bits) {
    nlohmann::json k = j;
    k["quantization"] = {{"group_size", 64}, {"bits", bits}};
    EXPECT_EQ(config_weight_bytes(parse_model_config(k, "x")), want) << bits;
  }
}

TEST(Footprint, KvWidths) {
  const ModelConfig c = load_model_config(kConfigs + "qwen3-coder-480b-a35b-4bit");
  // 8-bit: 128 bytes + 2 groups x (bf16 scale + bias) = 136 bytes per head row.
  EXPECT_EQ(kv_bytes_per_token(c, 8), 2ull * 62 * 8 * 136);
  EXPECT_EQ(kv_bytes_per_token(c, 4), 2ull * 62 * 8 * 72);
  EXPECT_EQ(kv_bytes_per_token(c, 32), 2ull * 253952);
  EXPECT_THROW(kv_bytes_per_token(c, 5), Error);
}

TEST(Footprint, Sibling30B) {
  const ModelConfig c = load_model_config(kConfigs + "qwen3-coder-30b-a3b-4bit");
  EXPECT_EQ(kv_bytes_per_token(c, 16), 2ull * 48 * 4 * 128 * 2);
  // 30.53B parameters at 4.5 bits/weight plus bf16 norms: about 17.2 GB.
  const double gb = static_cast<double>(config_weight_bytes(c)) / 1e9;
  EXPECT_GT(gb, 17.0);
  EXPECT_LT(gb, 17.4);
}

}  // namespace
}  // namespace qcoder
