#include "model/model.h"

#include <set>

#include "core/error.h"
#include "core/log.h"
#include "kernels/ops.h"
#include "kernels/reference/ops.h"
#include "kernels/reference/quant_ref.h"
#include "model/blocks.h"
#include "model/linear.h"
#include "model/rope_scaling.h"

namespace qcoder {

std::unique_ptr<Model> Model::load(const std::string& dir, const RopeOptions& rope) {
  std::unique_ptr<Model> m(new Model());
  m->dir_ = dir;
  m->config_ = load_model_config(dir, rope);
  m->store_ = WeightStore::open_dir(dir);
  m->weights_ = bind_weights(m->config_, *m->store_);
  QCODER_DEBUG(dir << ": bound " << m->weights_.tensor_count << " tensors, " << m->weights_.bytes
                   << " bytes");
  m->usage_ = std::make_unique<ExpertUsage>(static_cast<int64_t>(m->weights_.layers.size()), m->config_.num_experts);
  return m;
}

std::unique_ptr<Model> Model::load_part(const std::string& dir, const ModelConfig& part,
                                        const WeightSelection& selection) {
  std::unique_ptr<Model> m(new Model());
  m->dir_ = dir;
  const ModelConfig whole = load_model_config(dir);
  m->store_ = WeightStore::open_dir(dir);  // headers only: pages are touched by the forward pass
  m->weights_ = bind_weights(whole, *m->store_, selection);
  m->config_ = part;
  m->usage_ = std::make_unique<ExpertUsage>(static_cast<int64_t>(m->weights_.layers.size()), whole.num_experts);
  return m;
}

void Model::set_fast_numerics(bool fast) {
  fast_ = fast;
  const int bits = fast ? 8 : 16;
  // Which inputs take 8 bits: those of the gate/up products (the routed experts' and a dense
  // MLP's: the normed hidden state) and of the output head. Measured on the parity fixtures
  // (docs/PERFORMANCE.md, "--fast"): with these, the mean and max errors against the float64
  // reference stay below mlx-lm's bf16 errors on every fixture; 8-bit inputs to q/k/v, o_proj
  // or down_proj (attention scores through exp, attention outputs, SwiGLU's heavy tails) each
  // push the max error above mlx-lm's on some fixture.
  for (LayerWeights& l : weights_.layers) {
    for (QMatrix* m : {&l.mlp_gate, &l.mlp_up}) m->act_bits = bits;
    for (ExpertStack* s : {&l.gate_proj, &l.up_proj})
      for (QMatrix& m : s->experts) m.act_bits = bits;
  }
  weights_.lm_head.act_bits = bits;
}

KvCache Model::new_cache(int64_t max_tokens) const {
  return KvCache(config_, max_tokens > 0 ? max_tokens : usable_context(config_));
}

void validate_batch(std::span<const SequenceInput> batch, int64_t vocab_size) {
  std::set<const KvCache*> seen;
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceInput& in = batch[s];
    if (!in.cache) throw Error("forward: sequence " + std::to_string(s) + " has no KV cache");
    if (!seen.insert(in.cache).second)
      throw Error("forward: two sequences in one batch share a KV cache");
    for (int32_t t : in.tokens)
      if (t < 0 || t >= vocab_size)
        throw Error("token id " + std::to_string(t) + " is outside the vocabulary (0.." +
                    std::to_string(vocab_size - 1) + ")");
    if (in.cache->length() + static_cast<int64_t>(in.tokens.size()) > in.cache->max_tokens())
      throw Error("sequence of " + std::to_string(in.cache->length() + in.tokens.size()) +
                  " tokens exceeds the context limit of " + std::to_string(in.cache->max_tokens()));
  }
}

void Model::forward(std::span<const SequenceInput> batch, std::span<SequenceOutput> out,
                    ThreadPool& pool, ForwardTrace* trace, const ForwardHooks* hooks) const {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, V = c.vocab_size;
  if (out.size() != batch.size()) throw Error("forward: output span size differs from batch size");

  validate_batch(batch, V);  // before touching any cache

  BatchRows rows;
  std::vector<int32_t> ids;
  for (const SequenceInput& in : batch) {
    in.cache->reserve_more(static_cast<int64_t>(in.tokens.size()));
    for (size_t i = 0; i < in.tokens.size(); ++i) {
      rows.cache.push_back(in.cache);
      rows.pos.push_back(in.cache->length() + static_cast<int64_t>(i));
      ids.push_back(in.tokens[i]);
    }
  }
  const int64_t n = rows.size();

  // x: the residual stream [n, H]; h: normed input of a block; r: a block's output.
  std::vector<float> x(static_cast<size_t>(n * H)), h(x.size()), r(x.size());
  if (hooks && hooks->input) {
    hooks->input(x.data(), n);
  } else {
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ref::dequantize_row(weights_.embed, ids[i], &x[i * H]);
    });
  }
  if (trace) trace->routes.assign(static_cast<size_t>(c.num_hidden_layers), {});

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& w = weights_.layers[l];
    for (int64_t i = 0; i < n; ++i) ops::rms_norm(&x[i * H], w.input_norm.data(), H, c.rms_norm_eps, &h[i * H]);
    if (c.num_key_value_heads > 0) attention_block(c, w, l, h.data(), rows, r.data(), pool);
    else std::fill(r.begin(), r.end(), 0.0f);  // a rank without heads: a zero partial
    if (hooks && hooks->reduce_attention) hooks->reduce_attention(r.data(), r.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] += r[i];
    for (int64_t i = 0; i < n; ++i) ops::rms_norm(&x[i * H], w.post_norm.data(), H, c.rms_norm_eps, &h[i * H]);
    if (w.sparse) {
      std::vector<int32_t> local_routes;
      std::vector<int32_t>* routes = trace ? &trace->routes[l] : &local_routes;
      moe_block(c, w, h.data(), n, r.data(), pool, routes);
      usage_->record(l, *routes);
      if (residency_) residency_->after_layer(l, *routes);
      if (hooks && hooks->reduce_moe) hooks->reduce_moe(r.data(), r.size());
    } else {
      dense_mlp_block(c, w, h.data(), n, r.data(), pool);
      if (trace) trace->routes[l].assign(static_cast<size_t>(n * c.num_experts_per_tok), -1);
    }
    for (size_t i = 0; i < x.size(); ++i) x[i] += r[i];
  }
  if (hooks && hooks->output) hooks->output(x.data(), n);

  // Final norm and the output head, only on the rows whose logits are wanted.
  int64_t row0 = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceInput& in = batch[s];
    const int64_t len = static_cast<int64_t>(in.tokens.size());
    SequenceOutput& o = out[s];
    const int64_t first = in.logits == LogitsMode::kAll ? 0 : len - 1;
    o.rows = in.logits == LogitsMode::kNone || len == 0 ? 0 : len - first;
    if (hooks && !hooks->logits) o.rows = 0;
    o.logits.assign(static_cast<size_t>(o.rows * V), 0.0f);
    if (o.rows > 0) {
      std::vector<float> normed(static_cast<size_t>(o.rows * H));
      for (int64_t i = 0; i < o.rows; ++i)
        ops::rms_norm(&x[(row0 + first + i) * H], weights_.final_norm.data(), H, c.rms_norm_eps,
                      &normed[i * H]);
      apply_linear(weights_.lm_head, normed.data(), o.rows, o.logits.data(), pool);
    }
    in.cache->commit(len);
    row0 += len;
  }
  if (residency_) residency_->after_forward();
}

}  // namespace qcoder
