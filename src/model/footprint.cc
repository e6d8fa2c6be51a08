#include "model/footprint.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "model/rope_scaling.h"

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

int kv_group_size(const ModelConfig& c, int kv_bits) {
  if (kv_bits != 8 && kv_bits != 4) return 0;
  return c.head_dim % 64 == 0 ? 64 : 32;
}

std::string kv_format_name(const ModelConfig& c, int kv_bits) {
  kv_bytes_per_token(c, kv_bits);  // validates
  if (kv_bits == 32) return "float32";
  if (kv_bits == 16) return "bf16";
  return "affine " + std::to_string(kv_bits) + "-bit g" + std::to_string(kv_group_size(c, kv_bits));
}

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

ModelBytes model_bytes_from_config(const ModelConfig& c) {
  const uint64_t H = static_cast<uint64_t>(c.hidden_size), V = static_cast<uint64_t>(c.vocab_size),
                 hd = static_cast<uint64_t>(c.head_dim), nh = static_cast<uint64_t>(c.num_attention_heads),
                 nkv = static_cast<uint64_t>(c.num_key_value_heads);
  ModelBytes m;
  m.tied = c.tie_word_embeddings;
  m.embed = matrix_bytes(c, "model.embed_tokens", V, H);
  m.final_norm = H * kBf16;
  if (!c.tie_word_embeddings) m.head = matrix_bytes(c, "lm_head", V, H);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    LayerBytes L;
    L.norms = 2 * H * kBf16 + 2 * hd * kBf16;  // input/post norms, q/k norms
    L.attention = matrix_bytes(c, p + ".self_attn.q_proj", nh * hd, H) +
                  matrix_bytes(c, p + ".self_attn.k_proj", nkv * hd, H) +
                  matrix_bytes(c, p + ".self_attn.v_proj", nkv * hd, H) +
                  matrix_bytes(c, p + ".self_attn.o_proj", H, nh * hd);
    L.sparse = c.is_sparse_layer(i);
    if (L.sparse) {
      const uint64_t E = static_cast<uint64_t>(c.num_experts), I = static_cast<uint64_t>(c.moe_intermediate_size);
      L.router = matrix_bytes(c, p + ".mlp.gate", E, H);
      L.experts = matrix_bytes(c, p + ".mlp.switch_mlp.gate_proj", I, H, E) +
                  matrix_bytes(c, p + ".mlp.switch_mlp.up_proj", I, H, E) +
                  matrix_bytes(c, p + ".mlp.switch_mlp.down_proj", H, I, E);
    } else {
      const uint64_t I = static_cast<uint64_t>(c.intermediate_size);
      L.dense_mlp = matrix_bytes(c, p + ".mlp.gate_proj", I, H) + matrix_bytes(c, p + ".mlp.up_proj", I, H) +
                    matrix_bytes(c, p + ".mlp.down_proj", H, I);
    }
    m.layers.push_back(L);
  }
  return m;
}

uint64_t config_weight_bytes(const ModelConfig& c) { return model_bytes_from_config(c).total(); }

uint64_t LayerBytes::active(int64_t experts_per_tok, int64_t num_experts) const {
  const uint64_t chosen =
      num_experts > 0 ? experts / static_cast<uint64_t>(num_experts) * static_cast<uint64_t>(experts_per_tok) : 0;
  return norms + attention + router + dense_mlp + (sparse ? chosen : 0);
}

uint64_t ModelBytes::total() const {
  uint64_t t = embed + head + final_norm + other;
  for (const LayerBytes& l : layers) t += l.total();
  return t;
}

uint64_t ModelBytes::embed_row(int64_t vocab_size) const {
  return vocab_size > 0 ? (embed + static_cast<uint64_t>(vocab_size) - 1) / static_cast<uint64_t>(vocab_size) : 0;
}

ModelBytes model_bytes_from_store(const ModelConfig& c, const WeightStore& store) {
  ModelBytes m;
  m.tied = c.tie_word_embeddings;
  m.layers.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) m.layers[static_cast<size_t>(i)].sparse = c.is_sparse_layer(i);
  const std::string layer_prefix = "model.layers.";
  for (const auto& [name, info] : store.all()) {
    const uint64_t n = info->nbytes;
    if (name.rfind("model.embed_tokens.", 0) == 0) {
      m.embed += n;
    } else if (name.rfind("lm_head.", 0) == 0) {
      (m.tied ? m.other : m.head) += n;  // tied: mlx-lm ignores lm_head.weight
    } else if (name.rfind("model.norm.", 0) == 0) {
      m.final_norm += n;
    } else if (name.rfind(layer_prefix, 0) == 0) {
      const size_t dot = name.find('.', layer_prefix.size());
      int64_t layer = -1;
      try {
        layer = std::stoll(name.substr(layer_prefix.size(), dot - layer_prefix.size()));
      } catch (const std::exception&) {
      }
      if (layer < 0 || layer >= c.num_hidden_layers || dot == std::string::npos) {
        m.other += n;
        continue;
      }
      LayerBytes& L = m.layers[static_cast<size_t>(layer)];
      const std::string rest = name.substr(dot + 1);
      if (rest.find("norm.") != std::string::npos) L.norms += n;  // *_layernorm, q_norm, k_norm
      else if (rest.rfind("self_attn.", 0) == 0) L.attention += n;
      else if (rest.rfind("mlp.gate.", 0) == 0) L.router += n;
      else if (rest.rfind("mlp.switch_mlp.", 0) == 0 || rest.rfind("mlp.experts.", 0) == 0) L.experts += n;
      else if (rest.rfind("mlp.", 0) == 0) L.dense_mlp += n;
      else m.other += n;
    } else {
      m.other += n;
    }
  }
  return m;
}

uint64_t kv_bytes_per_token_per_layer(const ModelConfig& c, int kv_bits) {
  return c.num_hidden_layers > 0 ? kv_bytes_per_token(c, kv_bits) / static_cast<uint64_t>(c.num_hidden_layers) : 0;
}

uint64_t activation_bytes(const ModelConfig& c, int64_t ctx) {
  // Float32 working buffers of one decode step: residual/normed/branch rows, q/k/v/attention
  // rows, attention scores over the context, router probabilities, expert intermediates and
  // the logits row.
  const uint64_t H = static_cast<uint64_t>(c.hidden_size), hd = static_cast<uint64_t>(c.head_dim);
  const uint64_t I = static_cast<uint64_t>(std::max(c.moe_intermediate_size, c.intermediate_size));
  const uint64_t floats = 3 * H + (2 * static_cast<uint64_t>(c.num_attention_heads) +
                                   2 * static_cast<uint64_t>(c.num_key_value_heads)) * hd +
                          static_cast<uint64_t>(ctx) + static_cast<uint64_t>(c.num_experts) +
                          2 * I * static_cast<uint64_t>(std::max<int64_t>(1, c.num_experts_per_tok)) +
                          static_cast<uint64_t>(c.vocab_size);
  return floats * 4;
}

Footprint estimate_footprint(const ModelConfig& c, const WeightStore* store, int64_t ctx, int kv_bits) {
  Footprint f;
  f.max_ctx = usable_context(c);
  f.ctx = ctx > 0 ? ctx : f.max_ctx;
  f.kv_bits = kv_bits;
  f.kv_group_size = kv_group_size(c, kv_bits);
  if (store) {
    f.weights_bytes = store->total_bytes();
    f.tensor_count = store->tensor_count();
  } else {
    f.weights_bytes = config_weight_bytes(c);
  }
  f.kv_bytes_per_token = kv_bytes_per_token(c, kv_bits);
  f.kv_bytes_at_ctx = f.kv_bytes_per_token * static_cast<uint64_t>(f.ctx);
  f.activation_bytes = activation_bytes(c, f.ctx);
  f.total_bytes = f.weights_bytes + f.kv_bytes_at_ctx + f.activation_bytes;

  const ModelBytes mb = store ? model_bytes_from_store(c, *store) : model_bytes_from_config(c);
  // A tied embedding is the output head: read whole for every token, so resident.
  f.weights_resident_bytes = mb.head_matrix() + mb.final_norm;
  f.weights_paged_bytes = (mb.tied ? 0 : mb.embed) + mb.other;
  f.weights_read_per_token = mb.head_matrix() + mb.final_norm + (mb.tied ? 0 : mb.embed_row(c.vocab_size));
  for (const LayerBytes& L : mb.layers) {
    f.weights_resident_bytes += L.norms + L.attention + L.router + L.dense_mlp;
    f.weights_paged_bytes += L.experts;
    f.weights_read_per_token += L.active(c.num_experts_per_tok, c.num_experts);
  }
  f.resident_bytes = f.weights_resident_bytes + f.kv_bytes_at_ctx + f.activation_bytes;
  return f;
}

}  // namespace qcoder
