#include <algorithm>
#include <vector>

#include "kernels/reference/ops.h"
#include "model/blocks.h"
#include "model/linear.h"

namespace qcoder {
namespace {

// SwiGLU MLP for n rows: down(silu(gate x) * up x).
void swiglu_mlp(const QMatrix& gate, const QMatrix& up, const QMatrix& down, const float* x,
                int64_t n, float* out, ThreadPool& pool) {
  const int64_t I = gate.rows;
  std::vector<float> g(static_cast<size_t>(n * I)), u(static_cast<size_t>(n * I));
  apply_linear(gate, x, n, g.data(), pool);
  apply_linear(up, x, n, u.data(), pool);
  ref::swiglu(g.data(), u.data(), n * I, g.data());
  apply_linear(down, g.data(), n, out, pool);
}

}  // namespace

void moe_block(const ModelConfig& c, const LayerWeights& w, const float* h, int64_t n, float* out,
               ThreadPool& pool, std::vector<int32_t>* routes) {
  const int64_t E = c.num_experts, k = c.num_experts_per_tok, H = c.hidden_size;
  std::vector<float> probs(static_cast<size_t>(n * E));
  apply_linear(w.router, h, n, probs.data(), pool);

  // Per row: chosen experts (best first) and their weights.
  std::vector<int32_t> chosen(static_cast<size_t>(n * k));
  std::vector<float> weight(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r) {
    float* p = &probs[r * E];
    ref::softmax(p, E);
    int32_t* ids = &chosen[r * k];
    ref::top_k_desc(p, E, k, ids);
    double sum = 0.0;
    for (int64_t j = 0; j < k; ++j) sum += p[ids[j]];
    for (int64_t j = 0; j < k; ++j)
      weight[r * k + j] = c.norm_topk_prob ? static_cast<float>(p[ids[j]] / sum) : p[ids[j]];
    if (routes) {
      std::vector<int32_t> sorted(ids, ids + k);
      std::sort(sorted.begin(), sorted.end());
      routes->insert(routes->end(), sorted.begin(), sorted.end());
    }
  }

  // Group rows by expert so each expert's weights are streamed once for the whole batch.
  // expert_out[r*k + j] holds row r's output from its j-th choice; the weighted sum runs in
  // choice order per row afterwards, so the result does not depend on the grouping.
  std::vector<float> expert_out(static_cast<size_t>(n * k * H));
  std::vector<std::vector<int64_t>> slots(static_cast<size_t>(E));  // (r*k + j) per expert
  for (int64_t s = 0; s < n * k; ++s) slots[chosen[s]].push_back(s);
  std::vector<float> xin, yout;
  for (int64_t e = 0; e < E; ++e) {
    const auto& sl = slots[e];
    if (sl.empty()) continue;
    const int64_t m = static_cast<int64_t>(sl.size());
    xin.resize(static_cast<size_t>(m * H));
    yout.resize(static_cast<size_t>(m * H));
    for (int64_t i = 0; i < m; ++i) std::copy(h + (sl[i] / k) * H, h + (sl[i] / k + 1) * H, &xin[i * H]);
    swiglu_mlp(w.gate_proj.experts[e], w.up_proj.experts[e], w.down_proj.experts[e], xin.data(), m,
               yout.data(), pool);
    for (int64_t i = 0; i < m; ++i) std::copy(&yout[i * H], &yout[(i + 1) * H], &expert_out[sl[i] * H]);
  }
  for (int64_t r = 0; r < n; ++r) {
    float* o = out + r * H;
    std::fill(o, o + H, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      const float wj = weight[r * k + j];
      const float* y = &expert_out[(r * k + j) * H];
      for (int64_t d = 0; d < H; ++d) o[d] += wj * y[d];
    }
  }
}

void dense_mlp_block(const ModelConfig& c, const LayerWeights& w, const float* h, int64_t n,
                     float* out, ThreadPool& pool) {
  swiglu_mlp(w.mlp_gate, w.mlp_up, w.mlp_down, h, n, out, pool);
}

}  // namespace qcoder
