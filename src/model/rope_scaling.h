// RoPE scaling (spec/model.md §3): which one applies, and the frequencies and attention factor
// it gives. Only YaRN is implemented (Qwen's recipe for 1M context: factor 4 over 262,144).
//
// mlx-lm ignores rope_scaling for qwen3_moe (spec §3.2). qcoder applies the config's YaRN block
// by default; RopeOptions::Source::kNone (`--rope-scaling none`) reproduces mlx-lm bitwise.
// Semantics are those of transformers after the August 2025 fix of issue #38224 (PR #40320,
// included in 5.x): `factor` is used as given, never replaced by max_position_embeddings /
// original_max_position_embeddings (that ratio only stands in when factor is absent).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/config.h"

namespace qcoder {

// Parses a config's rope_scaling block. Returns nullopt for rope_type "default"; throws
// qcoder::Error naming `where` for an unsupported type ("linear", "dynamic", "longrope",
// "llama3", ...) or an invalid value (factor < 1 or not finite, beta_fast < beta_slow, ...).
// As in transformers: "factor" is required, null standing for max_position_embeddings /
// original_max_position_embeddings; a missing original is max_position_embeddings.
std::optional<RopeScaling> parse_rope_scaling(const nlohmann::json& block, const std::string& where,
                                              int64_t max_position_embeddings);

// Sets c.rope_scaling from the config's block (block may be null: no block) and the options:
// kConfig applies the block; kNone ignores it; kYarn uses the options' factor / original
// context, falling back to the block's YaRN values, then (original context only) to
// max_position_embeddings. Throws qcoder::Error on invalid values.
void resolve_rope_scaling(ModelConfig& c, const nlohmann::json* block, const std::string& where,
                          const RopeOptions& options);

// Frequencies [head_dim / 2] in double: plain theta^(-2i/d) without scaling, YaRN's otherwise.
std::vector<double> rope_inv_freq(const ModelConfig& c);
// The factor cos and sin are multiplied by (1 without scaling; YaRN: 1 + 0.1 ln(factor) unless
// attention_factor / mscale say otherwise).
double rope_attention_factor(const ModelConfig& c);

// The longest context the model is meant to run: factor x original_max_position_embeddings
// with YaRN, else max_position_embeddings.
int64_t usable_context(const ModelConfig& c);

// "none" or "yarn factor 4 over 262144 (attention factor 1.13863)", for logs and inspect.
std::string describe_rope_scaling(const ModelConfig& c);

}  // namespace qcoder
