#include "model/config.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace qcoder {
namespace {

using nlohmann::json;

const std::string k480 = std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/configs/qwen3-coder-480b-a35b-4bit";

json read(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  return json::parse(in);
}

std::string error_of(const json& j) {
  try {
    parse_model_config(j, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, Parses480B) {
  const ModelConfig c = load_model_config(k480);
  EXPECT_EQ(c.hidden_size, 6144);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_attention_heads, 96);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.num_experts, 160);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.rope_theta, 1e7);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_FALSE(c.tie_word_embeddings);
  ASSERT_TRUE(c.quantization.global.has_value());
  EXPECT_EQ(c.quantization.global->bits, 4);
  EXPECT_EQ(c.quantization.global->group_size, 64);
  EXPECT_EQ(c.quantization.global->mode, QuantMode::kAffine);
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{151645});
  for (int i = 0; i < 62; ++i) EXPECT_TRUE(c.is_sparse_layer(i));
}

TEST(ModelConfig, SparseRule) {
  json j = read(k480);
  j["num_hidden_layers"] = 6;
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = {3};
  const ModelConfig c = parse_model_config(j, "x");
  // sparse iff not listed and (i+1) % step == 0
  std::vector<bool> want = {false, true, false, false, false, true};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c.is_sparse_layer(i), want[i]) << i;
  j["num_experts"] = 0;
  j["num_experts_per_tok"] = 0;
  const ModelConfig d = parse_model_config(j, "x");
  for (int i = 0; i < 6; ++i) EXPECT_FALSE(d.is_sparse_layer(i));
}

TEST(ModelConfig, HeadDimFallsBackLikeMlxLm) {
  json j = read(k480);
  j.erase("head_dim");
  EXPECT_EQ(parse_model_config(j, "x").head_dim, 64);
}

TEST(ModelConfig, QuantizationOverrides) {
  json j = read(k480);
  j["quantization"] = {{"group_size", 32}, {"bits", 4}, {"mode", "mxfp4"},
                       {"model.layers.0.mlp.gate", {{"group_size", 64}, {"bits", 8}}},
                       {"lm_head", false}};
  const ModelConfig c = parse_model_config(j, "x");
  EXPECT_EQ(c.quantization.global->mode, QuantMode::kMxfp4);
  const QuantSpec router = c.quantization.spec_for("model.layers.0.mlp.gate", true);
  EXPECT_EQ(router.mode, QuantMode::kAffine);  // a dict without "mode" is affine
  EXPECT_EQ(router.bits, 8);
  EXPECT_EQ(router.group_size, 64);
  EXPECT_FALSE(c.quantization.spec_for("lm_head", true).quantized());
  EXPECT_EQ(c.quantization.spec_for("model.layers.1.mlp.gate", true).mode, QuantMode::kMxfp4);
  EXPECT_FALSE(c.quantization.spec_for("model.layers.1.mlp.gate", false).quantized());
}

TEST(ModelConfig, QuantizationConfigFallback) {
  json j = read(k480);
  j.erase("quantization");
  j["quantization_config"] = {{"group_size", 32}, {"bits", 8}};
  const ModelConfig c = parse_model_config(j, "x");
  EXPECT_EQ(c.quantization.global->bits, 8);
  EXPECT_EQ(c.quantization.global->group_size, 32);
  j["quantization_config"] = {{"quant_method", "awq"}};
  EXPECT_NE(error_of(j).find("awq"), std::string::npos);
}

TEST(ModelConfig, ErrorsNameTheField) {
  const json base = read(k480);
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"missing hidden_size", [](json& j) { j.erase("hidden_size"); }, "\"hidden_size\""},
      {"missing num_experts", [](json& j) { j.erase("num_experts"); }, "\"num_experts\""},
      {"missing mlp_only_layers", [](json& j) { j.erase("mlp_only_layers"); }, "\"mlp_only_layers\""},
      {"string hidden", [](json& j) { j["hidden_size"] = "6144"; }, "\"hidden_size\""},
      {"zero heads", [](json& j) { j["num_attention_heads"] = 0; }, "\"num_attention_heads\""},
      {"kv not dividing", [](json& j) { j["num_key_value_heads"] = 7; }, "\"num_key_value_heads\""},
      {"top-k > experts", [](json& j) { j["num_experts_per_tok"] = 161; }, "\"num_experts_per_tok\""},
      {"odd head_dim", [](json& j) { j["head_dim"] = 127; }, "\"head_dim\""},
      {"wrong model_type", [](json& j) { j["model_type"] = "llama"; }, "\"model_type\""},
      {"layer out of range", [](json& j) { j["mlp_only_layers"] = {62}; }, "\"mlp_only_layers\""},
      {"bits 7", [](json& j) { j["quantization"]["bits"] = 7; }, "bits"},
      {"group 48", [](json& j) { j["quantization"]["group_size"] = 48; }, "group"},
      {"unknown mode", [](json& j) { j["quantization"]["mode"] = "int4"; }, "int4"},
      {"mxfp4 with 8 bits", [](json& j) { j["quantization"] = {{"mode", "mxfp4"}, {"bits", 8}, {"group_size", 32}}; }, "mxfp4"},
      {"bad override", [](json& j) { j["quantization"]["lm_head"] = 3; }, "lm_head"},
      {"attention bias", [](json& j) { j["attention_bias"] = true; }, "attention_bias"},
      {"eos negative", [](json& j) { j["eos_token_id"] = -1; }, "eos_token_id"},
      {"not an object", [](json& j) { j = json::array(); }, "object"},
      {"negative eps", [](json& j) { j["rms_norm_eps"] = -1.0; }, "\"rms_norm_eps\""},
  };
  for (const Case& c : cases) {
    json j = base;
    c.edit(j);
    const std::string err = error_of(j);
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.what << ": got \"" << err << "\"";
    EXPECT_NE(err.find("config.json"), std::string::npos) << c.what;
  }
}

TEST(ModelConfig, StopTokens) {
  const auto dir = std::filesystem::temp_directory_path() / "qcoder_stop_tokens_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(k480 + "/config.json", dir / "config.json");
  const ModelConfig c = load_model_config(dir.string());
  EXPECT_EQ(load_stop_token_ids(dir.string(), c), std::vector<int32_t>{151645});
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": [151645, 151643], "top_k": 20})";
  EXPECT_EQ(load_stop_token_ids(dir.string(), c), (std::vector<int32_t>{151643, 151645}));
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": 151645})";
  std::ofstream(dir / "tokenizer.json")
      << R"({"added_tokens": [{"id": 151643, "content": "<|endoftext|>"}, {"id": 151645, "content": "<|im_end|>"}]})";
  EXPECT_EQ(load_stop_token_ids(dir.string(), c), (std::vector<int32_t>{151643, 151645}));
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": "x"})";
  EXPECT_THROW(load_stop_token_ids(dir.string(), c), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qcoder
