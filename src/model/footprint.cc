#include "model/footprint.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace qcoder {
namespace {

constexpr uint64_t kBf16 = 2;

// One [rows, cols] matrix (times `count` for expert stacks) under the spec for `path`.
uint64_t matrix_bytes(const ModelConfig& c, const std::string& path, uint64_t rows, uint64_t cols,
                      uint64_t count = 1) {
  const QuantSpec spec = c.quantization.spec_for(path, /*has_scales=*/true);
  if (!spec.quantized()) return count * rows * cols * kBf16;
  const uint64_t packed = static_cast<uint64_t>(packed_words_per_row(spec, static_cast<int64_t>(cols))) * 4;
  const uint64_t groups = cols / static_cast<uint64_t>(spec.group_size);
  const uint64_t scale_bytes = spec.mode == QuantMode::kAffine ? kBf16 : 1;
  const uint64_t per_row = packed + groups * scale_bytes * (quant_mode_has_biases(spec.mode) ? 2 : 1);
  return count * rows * per_row;
}

}  // namespace

uint64_t kv_bytes_per_token(const ModelConfig& c, int kv_bits) {
  const uint64_t hd = static_cast<uint64_t>(c.head_dim);
  uint64_t per_head;
  switch (kv_bits) {
    case 32: per_head = hd * 4; break;
    case 16: per_head = hd * 2; break;
    case 8:
    case 4: {
      const uint64_t group = hd % 64 == 0 ? 64 : 32;
      if (hd % group != 0) throw Error("--kv-bits " + std::to_string(kv_bits) + " needs head_dim to be a multiple of 32");
      per_head = hd * static_cast<uint64_t>(kv_bits) / 8 + (hd / group) * 2 * kBf16;
      break;
    }
    default: throw Error("--kv-bits must be 32, 16, 8 or 4, got " + std::to_string(kv_bits));
  }
  return 2 * static_cast<uint64_t>(c.num_hidden_layers) * static_cast<uint64_t>(c.num_key_value_heads) * per_head;
}

uint64_t config_weight_bytes(const ModelConfig& c) {
  const uint64_t H = static_cast<uint64_t>(c.hidden_size), V = static_cast<uint64_t>(c.vocab_size),
                 hd = static_cast<uint64_t>(c.head_dim), nh = static_cast<uint64_t>(c.num_attention_heads),
                 nkv = static_cast<uint64_t>(c.num_key_value_heads);
  uint64_t total = matrix_bytes(c, "model.embed_tokens", V, H) + H * kBf16;  // + final norm
  if (!c.tie_word_embeddings) total += matrix_bytes(c, "lm_head", V, H);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    total += 2 * H * kBf16 + 2 * hd * kBf16;  // input/post norms, q/k norms
    total += matrix_bytes(c, p + ".self_attn.q_proj", nh * hd, H);
    total += matrix_bytes(c, p + ".self_attn.k_proj", nkv * hd, H);
    total += matrix_bytes(c, p + ".self_attn.v_proj", nkv * hd, H);
    total += matrix_bytes(c, p + ".self_attn.o_proj", H, nh * hd);
    if (c.is_sparse_layer(i)) {
      const uint64_t E = static_cast<uint64_t>(c.num_experts), I = static_cast<uint64_t>(c.moe_intermediate_size);
      total += matrix_bytes(c, p + ".mlp.gate", E, H);
      total += matrix_bytes(c, p + ".mlp.switch_mlp.gate_proj", I, H, E);
      total += matrix_bytes(c, p + ".mlp.switch_mlp.up_proj", I, H, E);
      total += matrix_bytes(c, p + ".mlp.switch_mlp.down_proj", H, I, E);
    } else {
      const uint64_t I = static_cast<uint64_t>(c.intermediate_size);
      total += matrix_bytes(c, p + ".mlp.gate_proj", I, H);
      total += matrix_bytes(c, p + ".mlp.up_proj", I, H);
      total += matrix_bytes(c, p + ".mlp.down_proj", H, I);
    }
  }
  return total;
}

Footprint estimate_footprint(const ModelConfig& c, const WeightStore* store, int64_t ctx, int kv_bits) {
  Footprint f;
  f.ctx = ctx > 0 ? ctx : c.max_position_embeddings;
  f.kv_bits = kv_bits;
  if (store) {
    f.weights_bytes = store->total_bytes();
    f.tensor_count = store->tensor_count();
  } else {
    f.weights_bytes = config_weight_bytes(c);
  }
  f.kv_bytes_per_token = kv_bytes_per_token(c, kv_bits);
  f.kv_bytes_at_ctx = f.kv_bytes_per_token * static_cast<uint64_t>(f.ctx);
  // Float32 working buffers of one decode step: residual/normed/branch rows, q/k/v/attention
  // rows, attention scores over the context, router probabilities, expert intermediates and
  // the logits row.
  const uint64_t H = static_cast<uint64_t>(c.hidden_size), hd = static_cast<uint64_t>(c.head_dim);
  const uint64_t I = static_cast<uint64_t>(std::max(c.moe_intermediate_size, c.intermediate_size));
  const uint64_t floats = 3 * H + (2 * static_cast<uint64_t>(c.num_attention_heads) +
                                   2 * static_cast<uint64_t>(c.num_key_value_heads)) * hd +
                          static_cast<uint64_t>(f.ctx) + static_cast<uint64_t>(c.num_experts) +
                          2 * I * static_cast<uint64_t>(std::max<int64_t>(1, c.num_experts_per_tok)) +
                          static_cast<uint64_t>(c.vocab_size);
  f.activation_bytes = floats * 4;
  f.total_bytes = f.weights_bytes + f.kv_bytes_at_ctx + f.activation_bytes;
  return f;
}

}  // namespace qcoder
