#include "model/weights.h"

#include <set>

#include "core/error.h"
#include "core/log.h"

namespace qcoder {
namespace {

class Binder {
 public:
  Binder(const ModelConfig& config, const WeightStore& store) : config_(config), store_(store) {}

  const TensorInfo& use(const std::string& name) {
    const TensorInfo& t = store_.get(name);
    if (used_.insert(name).second) {
      bytes_ += t.nbytes;
      ++count_;
    }
    return t;
  }

  std::vector<float> norm(const std::string& path, int64_t n) {
    const TensorInfo& t = use(path + ".weight");
    if (t.shape != std::vector<int64_t>{n})
      throw Error(t.file + ": tensor " + t.name + " has shape " + t.shape_string() +
                  ", expected [" + std::to_string(n) + "]");
    if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16)
      throw Error(t.file + ": tensor " + t.name + " has dtype " + std::string(dtype_name(t.dtype)) +
                  "; norm weights must be F32, F16 or BF16");
    std::vector<float> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[i] = load_float(t.dtype, t.data, static_cast<size_t>(i));
    return out;
  }

  // A Linear (or Embedding) at `path` with logical shape [rows, cols].
  QMatrix linear(const std::string& path, int64_t rows, int64_t cols) {
    std::vector<QMatrix> one = stacked(path, 0, rows, cols);
    return one[0];
  }

  // experts == 0: a single matrix at `path`; otherwise a stacked [E, rows, cols] tensor.
  std::vector<QMatrix> stacked(const std::string& path, int64_t experts, int64_t rows,
                               int64_t cols) {
    const bool has_scales = store_.contains(path + ".scales");
    const QuantSpec spec = config_.quantization.spec_for(path, has_scales);
    const TensorInfo& w = use(path + ".weight");
    std::vector<int64_t> lead;
    if (experts > 0) lead.push_back(experts);
    auto expect_shape = [&](const TensorInfo& t, int64_t last) {
      std::vector<int64_t> want = lead;
      want.push_back(rows);
      want.push_back(last);
      if (t.shape != want) {
        std::string ws = "[";
        for (size_t i = 0; i < want.size(); ++i) ws += (i ? ", " : "") + std::to_string(want[i]);
        throw Error(t.file + ": tensor " + t.name + " has shape " + t.shape_string() +
                    ", expected " + ws + "]" + describe(spec));
      }
    };
    const size_t n = experts > 0 ? static_cast<size_t>(experts) : 1;
    std::vector<QMatrix> out(n);
    if (!spec.quantized()) {
      if (has_scales)
        throw Error(w.file + ": tensor " + path + ".scales exists but config.json says " + path +
                    " is not quantized");
      if (w.dtype != DType::kF32 && w.dtype != DType::kF16 && w.dtype != DType::kBF16)
        throw Error(w.file + ": tensor " + w.name + " has dtype " + std::string(dtype_name(w.dtype)) +
                    ", but " + path + " is not quantized (expected F32, F16 or BF16; is the "
                    "\"quantization\" entry of config.json missing?)");
      expect_shape(w, cols);
      const size_t row_bytes = static_cast<size_t>(cols) * dtype_size(w.dtype);
      for (size_t e = 0; e < n; ++e) {
        QMatrix& m = out[e];
        m.spec = spec;
        m.rows = rows;
        m.cols = cols;
        m.dtype = w.dtype;
        m.row_bytes = row_bytes;
        m.data = w.data + e * static_cast<size_t>(rows) * row_bytes;
      }
      return out;
    }
    if (!has_scales)
      throw Error(store_.dir() + ": missing tensor " + path + ".scales (config.json says " + path +
                  " is quantized: " + spec.to_string() + ")");
    if (w.dtype != DType::kU32)
      throw Error(w.file + ": tensor " + w.name + " has dtype " + std::string(dtype_name(w.dtype)) +
                  "; quantized weights must be U32");
    if (cols % spec.group_size != 0)
      throw Error(w.file + ": tensor " + w.name + ": input width " + std::to_string(cols) +
                  " is not a multiple of the group size " + std::to_string(spec.group_size));
    const int64_t words = packed_words_per_row(spec, cols);
    if (w.ndim() == static_cast<int>(lead.size()) + 2 && w.shape.back() != words && w.shape.back() > 0 &&
        (w.shape.back() * 32) % cols == 0)
      throw Error(w.file + ": tensor " + w.name + " has shape " + w.shape_string() + ", which implies " +
                  std::to_string(w.shape.back() * 32 / cols) + "-bit weights, but config.json says " +
                  spec.to_string() + " for " + path);
    expect_shape(w, words);
    const int64_t groups = cols / spec.group_size;
    const TensorInfo& s = use(path + ".scales");
    expect_shape(s, groups);
    const bool fp_scales = spec.mode == QuantMode::kAffine;
    if (fp_scales ? (s.dtype != DType::kF32 && s.dtype != DType::kF16 && s.dtype != DType::kBF16)
                  : (s.dtype != DType::kU8 && s.dtype != DType::kF8E4M3 && s.dtype != DType::kF8E8M0))
      throw Error(s.file + ": tensor " + s.name + " has dtype " + std::string(dtype_name(s.dtype)) +
                  ", which does not fit " + spec.to_string());
    const TensorInfo* b = nullptr;
    if (quant_mode_has_biases(spec.mode)) {
      b = &use(path + ".biases");
      expect_shape(*b, groups);
      if (b->dtype != s.dtype)
        throw Error(b->file + ": tensor " + b->name + " has dtype " + std::string(dtype_name(b->dtype)) +
                    " but its scales are " + std::string(dtype_name(s.dtype)));
    } else if (store_.contains(path + ".biases")) {
      throw Error(store_.get(path + ".biases").file + ": tensor " + path + ".biases is unexpected for " +
                  spec.to_string());
    }
    const size_t row_bytes = static_cast<size_t>(words) * 4;
    const size_t srow = static_cast<size_t>(groups) * dtype_size(s.dtype);
    for (size_t e = 0; e < n; ++e) {
      QMatrix& m = out[e];
      m.spec = spec;
      m.rows = rows;
      m.cols = cols;
      m.dtype = DType::kU32;
      m.row_bytes = row_bytes;
      m.data = w.data + e * static_cast<size_t>(rows) * row_bytes;
      m.scales_dtype = s.dtype == DType::kF8E4M3 || s.dtype == DType::kF8E8M0 ? DType::kU8 : s.dtype;
      m.scales_row_bytes = srow;
      m.scales = s.data + e * static_cast<size_t>(rows) * srow;
      if (b) {
        m.biases = b->data + e * static_cast<size_t>(rows) * srow;
        m.biases_dtype = b->dtype;
        m.biases_row_bytes = srow;
      }
    }
    return out;
  }

  // Experts [first, last) are bound; the others stay empty views.
  ExpertStack experts(const std::string& mlp, const std::string& name, int64_t rows, int64_t cols,
                      int64_t first, int64_t last) {
    ExpertStack stack;
    const std::string switch_path = mlp + ".switch_mlp." + name;
    if (store_.contains(switch_path + ".weight")) {
      stack.experts = stacked(switch_path, config_.num_experts, rows, cols);
      for (int64_t e = 0; e < config_.num_experts; ++e)
        if (e < first || e >= last) stack.experts[static_cast<size_t>(e)] = QMatrix{};
      return stack;
    }
    if (!store_.contains(mlp + ".experts.0." + name + ".weight"))
      throw Error(store_.dir() + ": missing tensor " + switch_path + ".weight (nor per-expert " +
                  mlp + ".experts.0." + name + ".weight)");
    for (int64_t e = 0; e < config_.num_experts; ++e)
      stack.experts.push_back(e < first || e >= last
                                  ? QMatrix{}
                                  : linear(mlp + ".experts." + std::to_string(e) + "." + name, rows, cols));
    return stack;
  }

  void report_unused() const {
    size_t unused = 0;
    for (const auto& [name, info] : store_.all()) {
      if (used_.count(name)) continue;
      if (++unused <= 5) QCODER_WARN(info->file << ": tensor " << name << " is not used by the model");
    }
    if (unused > 5) QCODER_WARN((unused - 5) << " more unused tensors");
  }

  uint64_t bytes() const { return bytes_; }
  size_t count() const { return count_; }

 private:
  static std::string describe(const QuantSpec& spec) {
    return spec.quantized() ? " for " + spec.to_string() : "";
  }

  const ModelConfig& config_;
  const WeightStore& store_;
  std::set<std::string> used_;
  uint64_t bytes_ = 0;
  size_t count_ = 0;
};

}  // namespace

ModelWeights bind_weights(const ModelConfig& c, const WeightStore& store) {
  return bind_weights(c, store, WeightSelection{});
}

ModelWeights bind_weights(const ModelConfig& c, const WeightStore& store, const WeightSelection& sel) {
  const int64_t L = c.num_hidden_layers;
  const int64_t layer_begin = sel.layer_begin, layer_end = sel.layer_end < 0 ? L : sel.layer_end;
  const int64_t kv_begin = sel.kv_head_begin, kv_end = sel.kv_head_end < 0 ? c.num_key_value_heads : sel.kv_head_end;
  if (layer_begin < 0 || layer_begin > layer_end || layer_end > L)
    throw Error("bind_weights: layer range [" + std::to_string(layer_begin) + ", " + std::to_string(layer_end) +
                ") is outside the model's " + std::to_string(L) + " layers");
  if (kv_begin < 0 || kv_begin > kv_end || kv_end > c.num_key_value_heads)
    throw Error("bind_weights: KV head range [" + std::to_string(kv_begin) + ", " + std::to_string(kv_end) +
                ") is outside the model's " + std::to_string(c.num_key_value_heads) + " KV heads");
  const bool full = layer_begin == 0 && layer_end == L && sel.embed && sel.head && kv_begin == 0 &&
                    kv_end == c.num_key_value_heads && !sel.expert_range;
  Binder b(c, store);
  ModelWeights w;
  w.first_layer = layer_begin;
  const int64_t H = c.hidden_size, hd = c.head_dim;
  if (sel.embed || (sel.head && c.tie_word_embeddings)) {
    QMatrix embed = b.linear("model.embed_tokens", c.vocab_size, H);
    if (sel.embed) w.embed = embed;
    if (sel.head && c.tie_word_embeddings) w.lm_head = embed;
  }
  if (sel.head) {
    if (c.tie_word_embeddings) {
      if (store.contains("lm_head.weight"))
        QCODER_WARN("tie_word_embeddings is true: ignoring lm_head.weight, as mlx-lm does");
    } else {
      w.lm_head = b.linear("lm_head", c.vocab_size, H);
    }
    w.final_norm = b.norm("model.norm", H);
  }
  // Query heads per KV head; the kept heads are a contiguous run of whole groups.
  const int64_t group = c.num_key_value_heads > 0 ? c.num_attention_heads / c.num_key_value_heads : 0;
  const int64_t q_begin = kv_begin * group * hd, q_end = kv_end * group * hd;
  uint64_t sharded_bytes = 0;  // bytes of the views kept, when not everything is bound
  for (int64_t i = layer_begin; i < layer_end; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    LayerWeights Lw;
    Lw.input_norm = b.norm(p + ".input_layernorm", H);
    Lw.post_norm = b.norm(p + ".post_attention_layernorm", H);
    Lw.q_norm = b.norm(p + ".self_attn.q_norm", hd);
    Lw.k_norm = b.norm(p + ".self_attn.k_norm", hd);
    Lw.q_proj = b.linear(p + ".self_attn.q_proj", c.num_attention_heads * hd, H);
    Lw.k_proj = b.linear(p + ".self_attn.k_proj", c.num_key_value_heads * hd, H);
    Lw.v_proj = b.linear(p + ".self_attn.v_proj", c.num_key_value_heads * hd, H);
    Lw.o_proj = b.linear(p + ".self_attn.o_proj", H, c.num_attention_heads * hd);
    if (kv_begin != 0 || kv_end != c.num_key_value_heads) {
      Lw.q_proj = row_slice(Lw.q_proj, q_begin, q_end);
      Lw.k_proj = row_slice(Lw.k_proj, kv_begin * hd, kv_end * hd);
      Lw.v_proj = row_slice(Lw.v_proj, kv_begin * hd, kv_end * hd);
      try {
        Lw.o_proj = col_slice(Lw.o_proj, q_begin, q_end);
      } catch (const Error& e) {
        throw Error(p + ".self_attn.o_proj: cannot split the attention heads here: " + e.what());
      }
    }
    for (const char* norm : {".input_layernorm", ".post_attention_layernorm", ".self_attn.q_norm", ".self_attn.k_norm"})
      sharded_bytes += store.get(p + norm + ".weight").nbytes;
    sharded_bytes += Lw.q_proj.storage_bytes() +
                     Lw.k_proj.storage_bytes() + Lw.v_proj.storage_bytes() + Lw.o_proj.storage_bytes();
    Lw.sparse = c.is_sparse_layer(i);
    const std::string mlp = p + ".mlp";
    if (Lw.sparse) {
      const int64_t I = c.moe_intermediate_size;
      const auto [first, last] = sel.expert_range ? sel.expert_range(i) : std::pair<int64_t, int64_t>{0, c.num_experts};
      if (first < 0 || first > last || last > c.num_experts)
        throw Error("bind_weights: expert range [" + std::to_string(first) + ", " + std::to_string(last) +
                    ") of layer " + std::to_string(i) + " is outside its " + std::to_string(c.num_experts) + " experts");
      Lw.router = b.linear(mlp + ".gate", c.num_experts, H);
      Lw.gate_proj = b.experts(mlp, "gate_proj", I, H, first, last);
      Lw.up_proj = b.experts(mlp, "up_proj", I, H, first, last);
      Lw.down_proj = b.experts(mlp, "down_proj", H, I, first, last);
      sharded_bytes += Lw.router.storage_bytes();
      for (const ExpertStack* st : {&Lw.gate_proj, &Lw.up_proj, &Lw.down_proj})
        for (const QMatrix& m : st->experts) sharded_bytes += m.storage_bytes();
    } else {
      const int64_t I = c.intermediate_size;
      Lw.mlp_gate = b.linear(mlp + ".gate_proj", I, H);
      Lw.mlp_up = b.linear(mlp + ".up_proj", I, H);
      Lw.mlp_down = b.linear(mlp + ".down_proj", H, I);
      sharded_bytes += Lw.mlp_gate.storage_bytes() + Lw.mlp_up.storage_bytes() + Lw.mlp_down.storage_bytes();
    }
    w.layers.push_back(std::move(Lw));
  }
  w.tensor_count = b.count();
  if (full) {
    b.report_unused();
    w.bytes = b.bytes();
  } else {
    if (sel.embed) sharded_bytes += w.embed.storage_bytes();
    if (sel.head) {
      sharded_bytes += store.get("model.norm.weight").nbytes;
      if (!c.tie_word_embeddings || !sel.embed) sharded_bytes += w.lm_head.storage_bytes();
    }
    w.bytes = sharded_bytes;
  }
  return w;
}

QMatrix row_slice(const QMatrix& m, int64_t begin, int64_t end) {
  if (begin < 0 || begin > end || end > m.rows)
    throw Error("row slice [" + std::to_string(begin) + ", " + std::to_string(end) + ") of a matrix with " +
                std::to_string(m.rows) + " rows");
  QMatrix s = m;
  s.rows = end - begin;
  const auto b = static_cast<size_t>(begin);
  if (m.data) s.data = m.data + b * m.row_bytes;
  if (m.scales) s.scales = m.scales + b * m.scales_row_bytes;
  if (m.biases) s.biases = m.biases + b * m.biases_row_bytes;
  return s;
}

QMatrix col_slice(const QMatrix& m, int64_t begin, int64_t end) {
  if (begin < 0 || begin > end || end > m.cols)
    throw Error("column slice [" + std::to_string(begin) + ", " + std::to_string(end) + ") of a matrix with " +
                std::to_string(m.cols) + " columns");
  QMatrix s = m;
  s.cols = end - begin;
  if (!m.spec.quantized()) {
    if (m.data) s.data = m.data + static_cast<size_t>(begin) * dtype_size(m.dtype);
    return s;
  }
  const int64_t g = m.spec.group_size;
  if (begin % g != 0 || end % g != 0)
    throw Error("column slice [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") does not fall on the quantization groups of " + std::to_string(g) + " columns (" +
                m.spec.to_string() + ")");
  // g is a multiple of 8 for every MLX format, so begin * bits is a whole number of bytes.
  const auto groups = static_cast<size_t>(begin / g);
  if (m.data) s.data = m.data + static_cast<size_t>(begin) * static_cast<size_t>(m.spec.bits) / 8;
  if (m.scales) s.scales = m.scales + groups * dtype_size(m.scales_dtype);
  if (m.biases) s.biases = m.biases + groups * dtype_size(m.biases_dtype);
  return s;
}

}  // namespace qcoder
