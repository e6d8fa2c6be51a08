// Memory accounting for `qcoder inspect`: weights, KV cache and working buffers, from the
// checkpoint when present or from config.json alone. GB = 10^9 bytes wherever printed.
#pragma once

#include <cstdint>
#include <optional>

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
};

// Bytes per token of KV cache over all layers: 2 (K and V) x layers x kv_heads x head_dim
// elements. kv_bits 32 = float32, 16 = bf16, 8/4 = affine quantized along head_dim in groups
// of 64 (32 when head_dim is not a multiple of 64) with a bf16 scale and bias per group, as
// mlx-lm's kv_bits does. Throws qcoder::Error for other widths.
uint64_t kv_bytes_per_token(const ModelConfig& config, int kv_bits);

// Checkpoint bytes implied by the config alone: every Linear, Embedding and expert stack
// stored with its global or per-path quantization (bf16 scales/biases for affine, byte
// scales for mx/nv formats), unquantized tensors and norms as bf16.
uint64_t config_weight_bytes(const ModelConfig& config);

// store may be null (config-only). ctx <= 0 means max_position_embeddings.
Footprint estimate_footprint(const ModelConfig& config, const WeightStore* store, int64_t ctx,
                             int kv_bits);

}  // namespace qcoder
