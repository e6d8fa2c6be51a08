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

  ExpertStack experts(const std::string& mlp, const std::string& name, int64_t rows, int64_t cols) {
    ExpertStack stack;
    const std::string switch_path = mlp + ".switch_mlp." + name;
    if (store_.contains(switch_path + ".weight")) {
      stack.experts = stacked(switch_path, config_.num_experts, rows, cols);
      return stack;
    }
    if (!store_.contains(mlp + ".experts.0." + name + ".weight"))
      throw Error(store_.dir() + ": missing tensor " + switch_path + ".weight (nor per-expert " +
                  mlp + ".experts.0." + name + ".weight)");
    for (int64_t e = 0; e < config_.num_experts; ++e)
      stack.experts.push_back(linear(mlp + ".experts." + std::to_string(e) + "." + name, rows, cols));
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
  Binder b(c, store);
  ModelWeights w;
  const int64_t H = c.hidden_size, hd = c.head_dim;
  w.embed = b.linear("model.embed_tokens", c.vocab_size, H);
  if (c.tie_word_embeddings) {
    w.lm_head = w.embed;
    if (store.contains("lm_head.weight"))
      QCODER_WARN("tie_word_embeddings is true: ignoring lm_head.weight, as mlx-lm does");
  } else {
    w.lm_head = b.linear("lm_head", c.vocab_size, H);
  }
  w.final_norm = b.norm("model.norm", H);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    LayerWeights L;
    L.input_norm = b.norm(p + ".input_layernorm", H);
    L.post_norm = b.norm(p + ".post_attention_layernorm", H);
    L.q_norm = b.norm(p + ".self_attn.q_norm", hd);
    L.k_norm = b.norm(p + ".self_attn.k_norm", hd);
    L.q_proj = b.linear(p + ".self_attn.q_proj", c.num_attention_heads * hd, H);
    L.k_proj = b.linear(p + ".self_attn.k_proj", c.num_key_value_heads * hd, H);
    L.v_proj = b.linear(p + ".self_attn.v_proj", c.num_key_value_heads * hd, H);
    L.o_proj = b.linear(p + ".self_attn.o_proj", H, c.num_attention_heads * hd);
    L.sparse = c.is_sparse_layer(i);
    const std::string mlp = p + ".mlp";
    if (L.sparse) {
      const int64_t I = c.moe_intermediate_size;
      L.router = b.linear(mlp + ".gate", c.num_experts, H);
      L.gate_proj = b.experts(mlp, "gate_proj", I, H);
      L.up_proj = b.experts(mlp, "up_proj", I, H);
      L.down_proj = b.experts(mlp, "down_proj", H, I);
    } else {
      const int64_t I = c.intermediate_size;
      L.mlp_gate = b.linear(mlp + ".gate_proj", I, H);
      L.mlp_up = b.linear(mlp + ".up_proj", I, H);
      L.mlp_down = b.linear(mlp + ".down_proj", H, I);
    }
    w.layers.push_back(std::move(L));
  }
  b.report_unused();
  w.bytes = b.bytes();
  w.tensor_count = b.count();
  return w;
}

}  // namespace qcoder
