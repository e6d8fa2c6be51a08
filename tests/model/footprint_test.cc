#include "model/footprint.h"

#include <fstream>
#include <tuple>

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

namespace qcoder {
namespace {

// issue 8 item 4: KV format, YaRN context and the paging budget.
TEST(Footprint, KvFormats480B) {
  const ModelConfig c = load_model_config(kConfigs + "qwen3-coder-480b-a35b-4bit");
  // Per head row of 128: bf16 256 bytes; 8-bit 128 + 2 groups x (scale + bias) x 2 = 136;
  // 4-bit 64 + 8 = 72. Times K and V, 62 layers, 8 KV heads.
  const std::vector<std::tuple<int, uint64_t, std::string>> want = {
      {32, 507904, "float32"}, {16, 253952, "bf16"}, {8, 134912, "affine 8-bit g64"}, {4, 71424, "affine 4-bit g64"}};
  for (const auto& [bits, bytes, name] : want) {
    const Footprint f = estimate_footprint(c, nullptr, 32768, bits);
    EXPECT_EQ(f.kv_bytes_per_token, bytes) << bits;
    EXPECT_EQ(f.kv_bytes_at_ctx, bytes * 32768) << bits;
    EXPECT_EQ(kv_format_name(c, bits), name);
    EXPECT_EQ(f.kv_group_size, bits <= 8 ? 64 : 0);
  }
  EXPECT_THROW(kv_format_name(c, 3), Error);
}

TEST(Footprint, YarnContextAndPagingBudget) {
  std::ifstream in(kConfigs + "qwen3-coder-480b-a35b-4bit/config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  const ModelConfig plain = parse_model_config(j, "x");
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 262144}};
  const ModelConfig yarn = parse_model_config(j, "x");
  const Footprint p = estimate_footprint(plain, nullptr, 0, 16), y = estimate_footprint(yarn, nullptr, 0, 16);
  EXPECT_EQ(p.max_ctx, 262144);
  EXPECT_EQ(p.ctx, 262144);
  EXPECT_EQ(y.max_ctx, 1048576);
  EXPECT_EQ(y.ctx, 1048576);
  EXPECT_EQ(y.kv_bytes_at_ctx, 253952ull * 1048576);  // 266.3 GB in bf16 at 1M
  EXPECT_EQ(estimate_footprint(yarn, nullptr, 0, 4).kv_bytes_at_ctx, 71424ull * 1048576);  // 74.9 GB
  // Paging: everything but the experts and the embedding table is read for every token.
  const ModelBytes mb = model_bytes_from_config(plain);
  uint64_t experts = 0;
  for (const LayerBytes& L : mb.layers) experts += L.experts;
  EXPECT_EQ(p.weights_paged_bytes, experts + mb.embed);
  EXPECT_EQ(p.weights_resident_bytes + p.weights_paged_bytes, p.weights_bytes);
  EXPECT_EQ(p.resident_bytes, p.weights_resident_bytes + p.kv_bytes_at_ctx + p.activation_bytes);
  // Read per token: resident weights + 8 of 160 experts per layer + one embedding row.
  EXPECT_EQ(p.weights_read_per_token, p.weights_resident_bytes + experts / 160 * 8 + mb.embed_row(plain.vocab_size));
  EXPECT_GT(p.weights_resident_bytes, 6'000'000'000ull);  // ~6.27 GB at 4 bits
  EXPECT_LT(p.weights_resident_bytes, 6'600'000'000ull);
}

TEST(Footprint, TiedEmbeddingIsResident) {
  std::ifstream in(kConfigs + "qwen3-coder-30b-a3b-4bit/config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  j["tie_word_embeddings"] = true;
  const ModelConfig c = parse_model_config(j, "x");
  const Footprint f = estimate_footprint(c, nullptr, 1000, 16);
  const ModelBytes mb = model_bytes_from_config(c);
  uint64_t experts = 0;
  for (const LayerBytes& L : mb.layers) experts += L.experts;
  EXPECT_EQ(f.weights_paged_bytes, experts);
  EXPECT_EQ(f.weights_resident_bytes + f.weights_paged_bytes, f.weights_bytes);
}

}  // namespace
}  // namespace qcoder
