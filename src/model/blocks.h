// The blocks of one decoder layer, shared by the forward pass. Inputs are already normed;
// outputs are the residual branch (the caller adds them).
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace qcoder {

// Where each row of a flattened batch comes from.
struct BatchRows {
  std::vector<KvCache*> cache;  // per row: its sequence's cache
  std::vector<int64_t> pos;     // per row: absolute position (RoPE angle, causal limit)
  int64_t size() const { return static_cast<int64_t>(pos.size()); }
  // RoPE cos/sin [rows, head_dim / 2], filled by the first attention block of a forward call.
  mutable std::vector<float> rope_cos, rope_sin;
};

// Self-attention: q/k/v projections, per-head q/k RMSNorm, rotate-half RoPE, writes this
// layer's keys/values into each row's cache, causal GQA attention, o_proj.
// h, out: [rows, hidden].
void attention_block(const ModelConfig& c, const LayerWeights& w, int64_t layer, const float* h,
                     const BatchRows& rows, float* out, ThreadPool& pool);

// Sparse MoE: router softmax over all experts, top-k (ties to the higher expert index),
// renormalised when norm_topk_prob, SwiGLU experts; rows grouped by expert so each expert's
// weights are read once per call. routes (optional) receives k ascending ids per row.
void moe_block(const ModelConfig& c, const LayerWeights& w, const float* h, int64_t n, float* out,
               ThreadPool& pool, std::vector<int32_t>* routes);

// Dense SwiGLU MLP of width intermediate_size.
void dense_mlp_block(const ModelConfig& c, const LayerWeights& w, const float* h, int64_t n,
                     float* out, ThreadPool& pool);

}  // namespace qcoder
