// Memory accounting for `qcoder inspect` and `qcoder plan`: weights (whole or by layer and
// part), KV cache and working buffers, from the checkpoint when present or from config.json
// alone. GB = 10^9 bytes wherever printed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"

namespace qcoder {

struct Footprint {
  uint64_t weights_bytes = 0;
  uint64_t kv_bytes_per_token = 0;
  uint64_t kv_bytes_at_ctx = 0;
  uint64_t activation_bytes = 0;
  uint64_t total_bytes = 0;
  std::optional<uint64_t> tensor_count;  // only with weights
  int64_t ctx = 0;
  int kv_bits = 16;
  int kv_group_size = 0;  // 8/4 bits: elements per bf16 scale + bias along head_dim; else 0
  // The longest usable context (model/rope_scaling.h usable_context: YaRN factor x original,
  // else max_position_embeddings); ctx <= 0 asks for it.
  int64_t max_ctx = 0;
  // Paging budget: the weights read for every token (attention, router, norms, dense MLPs,
  // final norm, output head) must stay resident; the experts and the embedding table (plus any
  // unused checkpoint tensors) stay mapped and are paged in on demand, k of E experts per layer
  // and one embedding row per token. resident_bytes = resident weights + KV at ctx + buffers,
  // the least memory that runs the model by paging.
  uint64_t weights_resident_bytes = 0;
  uint64_t weights_paged_bytes = 0;
  uint64_t weights_read_per_token = 0;  // resident weights + k experts per layer + one embedding row
  uint64_t resident_bytes = 0;
};

// "float32", "bf16", "affine 8-bit g64", "affine 4-bit g64" (throws as kv_bytes_per_token).
std::string kv_format_name(const ModelConfig& config, int kv_bits);
// Group size of quantized KV (64, or 32 when head_dim is not a multiple of 64); 0 for 16/32.
int kv_group_size(const ModelConfig& config, int kv_bits);

// Bytes per token of KV cache over all layers: 2 (K and V) x layers x kv_heads x head_dim
// elements. kv_bits 32 = float32, 16 = bf16, 8/4 = affine quantized along head_dim in groups
// of 64 (32 when head_dim is not a multiple of 64) with a bf16 scale and bias per group, as
// mlx-lm's kv_bits does. Throws qcoder::Error for other widths.
uint64_t kv_bytes_per_token(const ModelConfig& config, int kv_bits);

// Checkpoint bytes implied by the config alone: every Linear, Embedding and expert stack
// stored with its global or per-path quantization (bf16 scales/biases for affine, byte
// scales for mx/nv formats), unquantized tensors and norms as bf16.
uint64_t config_weight_bytes(const ModelConfig& config);

// store may be null (config-only). ctx <= 0 means the usable context (max_ctx); a larger ctx
// is accounted as asked (callers decide whether to refuse it).
Footprint estimate_footprint(const ModelConfig& config, const WeightStore* store, int64_t ctx,
                             int kv_bits);

// The weights by part, for placing a model across machines (`qcoder plan`, the shard plans of
// src/model/shard_plan.h). Same byte conventions as config_weight_bytes.
struct LayerBytes {
  uint64_t norms = 0;      // input/post-attention RMSNorm and the per-head q/k norms
  uint64_t attention = 0;  // q, k, v and o projections
  uint64_t router = 0;     // the MoE gate [num_experts, hidden]
  uint64_t experts = 0;    // all experts' gate/up/down projections
  uint64_t dense_mlp = 0;  // dense layers' gate/up/down projections
  bool sparse = false;

  uint64_t total() const { return norms + attention + router + experts + dense_mlp; }
  // Bytes read to decode one token at batch 1: everything but the experts not chosen
  // (k of E, rounded up to whole experts).
  uint64_t active(int64_t experts_per_tok, int64_t num_experts) const;
};

struct ModelBytes {
  uint64_t embed = 0;       // the embedding table
  uint64_t head = 0;        // lm_head; 0 when tied to the embedding
  uint64_t final_norm = 0;
  uint64_t other = 0;       // checkpoint tensors the model does not use (from a store only)
  std::vector<LayerBytes> layers;
  bool tied = false;

  uint64_t total() const;
  // Bytes of the output projection, whether its own tensor or the tied embedding.
  uint64_t head_matrix() const { return tied ? embed : head; }
  // One row of the embedding table (what a token's lookup reads).
  uint64_t embed_row(int64_t vocab_size) const;
};

// From config.json alone; total() == config_weight_bytes(config).
ModelBytes model_bytes_from_config(const ModelConfig& config);
// From the checkpoint's headers (exact tensor sizes; no data is read), grouped by name:
// model.layers.N.* by part, model.embed_tokens.*, lm_head.*, model.norm.*, the rest in other.
ModelBytes model_bytes_from_store(const ModelConfig& config, const WeightStore& store);

// KV cache bytes per token of one layer (kv_bytes_per_token / num_hidden_layers).
uint64_t kv_bytes_per_token_per_layer(const ModelConfig& config, int kv_bits);
// Float32 working buffers of one decode step at context ctx (Footprint::activation_bytes).
uint64_t activation_bytes(const ModelConfig& config, int64_t ctx);

}  // namespace qcoder
