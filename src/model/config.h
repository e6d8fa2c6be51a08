// The typed, validated Qwen3-MoE configuration (config.json + generation_config.json).
// Field meanings: spec/model.md §1. Required keys are those mlx-lm's qwen3_moe ModelArgs
// requires; unknown keys are logged at debug level.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kernels/quant_format.h"

namespace qcoder {

// config["quantization"]: global parameters plus per-module-path overrides. An override of
// nullopt is a `false` entry (keep the module in float).
struct QuantizationConfig {
  std::optional<QuantSpec> global;
  std::map<std::string, std::optional<QuantSpec>> overrides;

  bool present() const { return global.has_value() || !overrides.empty(); }
  // mlx-lm's load-time predicate for a quantizable module at `path`: the override if any,
  // else the global spec when the checkpoint has `path.scales` (has_scales), else none.
  QuantSpec spec_for(const std::string& path, bool has_scales) const;
};

// An applied RoPE scaling (model/rope_scaling.h); only "yarn" exists today. The config's
// block is validated when parsed: an unsupported type is an error, never silently ignored.
struct RopeScaling {
  std::string type = "yarn";
  double factor = 1.0;                            // s: context extension factor, >= 1
  int64_t original_max_position_embeddings = 0;   // L0: the pre-training context
  double beta_fast = 32.0, beta_slow = 1.0;       // correction range, in rotations
  std::optional<double> attention_factor;         // explicit mscale; else from factor
  std::optional<double> mscale, mscale_all_dim;   // DeepSeek-style attention factor inputs
  bool truncate = true;                           // floor/ceil the correction range
};

// Where the RoPE scaling comes from: config.json (the default), nothing (`--rope-scaling none`:
// plain RoPE as mlx-lm runs qwen3_moe), or YaRN set on the command line.
struct RopeOptions {
  enum class Source { kConfig, kNone, kYarn };
  Source source = Source::kConfig;
  std::optional<double> factor;         // --rope-factor (yarn only)
  std::optional<int64_t> original_ctx;  // --rope-orig-ctx (yarn only)
};

struct ModelConfig {
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;      // dense SwiGLU width
  int64_t moe_intermediate_size = 0;  // width of each expert
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  bool norm_topk_prob = true;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  std::optional<RopeScaling> rope_scaling;  // the scaling the forward pass applies
  std::vector<int32_t> eos_token_ids;  // config.json's eos_token_id (int or list)
  QuantizationConfig quantization;

  // Layer i uses the MoE block iff it is not in mlp_only_layers, num_experts > 0 and
  // (i + 1) % decoder_sparse_step == 0; otherwise the dense SwiGLU MLP.
  bool is_sparse_layer(int64_t i) const;
};

// Parses and validates a config.json object; `source` names the file in errors. `rope` picks
// the RoPE scaling (model/rope_scaling.h): by default the config's rope_scaling block.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source,
                               const RopeOptions& rope = {});
// Reads DIR/config.json.
ModelConfig load_model_config(const std::string& dir, const RopeOptions& rope = {});

// The token ids that end generation, chosen as mlx-lm does: generation_config.json's
// eos_token_id when present, else config.json's. In addition <|im_end|> (151645) and
// <|endoftext|> (151643) are added when the folder's tokenizer defines them with those ids, so
// a chat turn ends on either (mlx-lm needs --extra-eos-token for that).
std::vector<int32_t> load_stop_token_ids(const std::string& dir, const ModelConfig& config);

}  // namespace qcoder
