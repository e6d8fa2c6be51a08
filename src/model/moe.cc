#include <algorithm>
#include <vector>

#include "kernels/ops.h"
#include "kernels/reference/ops.h"
#include "model/blocks.h"
#include "model/linear.h"

namespace qcoder {
namespace {

// Indices of the k largest of p[0..n), best first; ties to the higher index (as ref::top_k_desc,
// without its allocation and sort: k passes over a few hundred values).
void top_k(const float* p, int64_t n, int64_t k, int32_t* out) {
  for (int64_t j = 0; j < k; ++j) {
    int32_t best = -1;
    for (int64_t e = n - 1; e >= 0; --e) {
      bool taken = false;
      for (int64_t i = 0; i < j; ++i) taken |= out[i] == e;
      if (taken) continue;
      if (best < 0 || p[e] > p[best]) best = static_cast<int32_t>(e);
    }
    out[j] = best;
  }
}

// The routed rows of one batch: slots (row r, choice j) grouped by expert.
struct Routing {
  std::vector<int32_t> chosen;     // [n, k] expert ids, best first
  std::vector<float> weight;       // [n, k]
  std::vector<int64_t> first;      // [E + 1]: expert e's slots are order[first[e] .. first[e+1])
  std::vector<int32_t> order;      // slot ids s = r*k + j, grouped by expert, ascending within
  std::vector<int32_t> token;      // [n*k]: token row of order[i]
  std::vector<int32_t> position;   // [n*k]: where slot s sits in `order`
};

Routing route(const ModelConfig& c, const float* logits, int64_t n, ThreadPool& pool,
              std::vector<int32_t>* routes, std::vector<float>& probs) {
  const int64_t E = c.num_experts, k = c.num_experts_per_tok;
  Routing rt;
  rt.chosen.resize(static_cast<size_t>(n * k));
  rt.weight.resize(static_cast<size_t>(n * k));
  probs.assign(logits, logits + n * E);
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* p = &probs[r * E];
      ops::softmax(p, E);
      int32_t* ids = &rt.chosen[r * k];
      top_k(p, E, k, ids);
      double sum = 0.0;
      for (int64_t j = 0; j < k; ++j) sum += p[ids[j]];
      for (int64_t j = 0; j < k; ++j)
        rt.weight[r * k + j] = c.norm_topk_prob ? static_cast<float>(p[ids[j]] / sum) : p[ids[j]];
    }
  }, 8);
  if (routes)
    for (int64_t r = 0; r < n; ++r) {
      std::vector<int32_t> sorted(&rt.chosen[r * k], &rt.chosen[(r + 1) * k]);
      std::sort(sorted.begin(), sorted.end());
      routes->insert(routes->end(), sorted.begin(), sorted.end());
    }
  rt.first.assign(static_cast<size_t>(E + 1), 0);
  for (int32_t e : rt.chosen) ++rt.first[e + 1];
  for (int64_t e = 0; e < E; ++e) rt.first[e + 1] += rt.first[e];
  rt.order.resize(rt.chosen.size());
  rt.token.resize(rt.chosen.size());
  rt.position.resize(rt.chosen.size());
  std::vector<int64_t> fill(rt.first.begin(), rt.first.end() - 1);
  for (int64_t s = 0; s < n * k; ++s) {
    const int64_t at = fill[rt.chosen[s]]++;
    rt.order[at] = static_cast<int32_t>(s);
    rt.token[at] = static_cast<int32_t>(s / k);
    rt.position[s] = static_cast<int32_t>(at);
  }
  return rt;
}

// SwiGLU MLP for n rows: down(silu(gate x) * up x).
void swiglu_mlp(const QMatrix& gate, const QMatrix& up, const QMatrix& down, const float* x,
                int64_t n, float* out, ThreadPool& pool) {
  const int64_t I = gate.rows;
  std::vector<float> g(static_cast<size_t>(n * I)), u(static_cast<size_t>(n * I));
  const QMatrix* ms[] = {&gate, &up};
  float* ys[] = {g.data(), u.data()};
  apply_linears(ms, x, n, ys, pool);
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    ops::swiglu(&g[b * I], &u[b * I], (e - b) * I, &g[b * I]);
  });
  apply_linear(down, g.data(), n, out, pool);
}

}  // namespace

void moe_block(const ModelConfig& c, const LayerWeights& w, const float* h, int64_t n, float* out,
               ThreadPool& pool, std::vector<int32_t>* routes) {
  const int64_t E = c.num_experts, k = c.num_experts_per_tok, H = c.hidden_size,
                I = c.moe_intermediate_size;
  std::vector<float> logits(static_cast<size_t>(n * E)), probs;
  apply_linear(w.router, h, n, logits.data(), pool);
  const Routing rt = route(c, logits.data(), n, pool, routes, probs);

  // Every expert's weights are streamed once for all the rows routed to it: the gate/up
  // products of all experts run as one parallel region over (expert, row panel), then the
  // down products. Rows are prepared once (per distinct format) and gathered by index.
  // Experts outside this rank's share (expert parallelism) are empty views: they contribute
  // zero, and the formats are taken from a bound expert.
  const int64_t slots = n * k;
  std::vector<float> g(static_cast<size_t>(slots * I)), u(g.size()), y(static_cast<size_t>(slots * H));
  int64_t e0 = 0;
  while (e0 < E && w.gate_proj.experts[e0].rows == 0) ++e0;
  if (e0 == E) {
    std::fill(out, out + n * H, 0.0f);
    return;
  }
  ops::PreparedActs xa, xb, ya;
  std::vector<LinearJob> jobs;
  const QMatrix& g0 = w.gate_proj.experts[e0];
  const QMatrix& u0 = w.up_proj.experts[e0];
  prepare_linear_input(g0, h, n, xa, pool);
  const bool same = g0.spec == u0.spec && g0.cols == u0.cols && g0.act_bits == u0.act_bits;
  if (!same) prepare_linear_input(u0, h, n, xb, pool);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t cnt = rt.first[e + 1] - rt.first[e];
    if (cnt == 0 || w.gate_proj.experts[e].rows == 0) continue;
    const int32_t* tok = &rt.token[rt.first[e]];
    jobs.push_back({&w.gate_proj.experts[e], &xa, tok, cnt, &g[rt.first[e] * I], I});
    jobs.push_back({&w.up_proj.experts[e], same ? &xa : &xb, tok, cnt, &u[rt.first[e] * I], I});
  }
  run_linear_jobs(jobs, pool);
  pool.parallel_for(slots, [&](int64_t b, int64_t e) {
    ops::swiglu(&g[b * I], &u[b * I], (e - b) * I, &g[b * I]);
  });
  prepare_linear_input(w.down_proj.experts[e0], g.data(), slots, ya, pool);
  jobs.clear();
  std::vector<int32_t> ident(static_cast<size_t>(slots));
  for (int64_t i = 0; i < slots; ++i) ident[i] = static_cast<int32_t>(i);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t cnt = rt.first[e + 1] - rt.first[e];
    if (cnt == 0 || w.down_proj.experts[e].rows == 0) continue;
    jobs.push_back({&w.down_proj.experts[e], &ya, &ident[rt.first[e]], cnt, &y[rt.first[e] * H], H});
  }
  run_linear_jobs(jobs, pool);

  // Weighted sum in choice order per row (independent of the grouping).
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* o = out + r * H;
      std::fill(o, o + H, 0.0f);
      for (int64_t j = 0; j < k; ++j)
        ops::axpy(rt.weight[r * k + j], &y[rt.position[r * k + j] * H], H, o);
    }
  });
}

void dense_mlp_block(const ModelConfig& c, const LayerWeights& w, const float* h, int64_t n,
                     float* out, ThreadPool& pool) {
  swiglu_mlp(w.mlp_gate, w.mlp_up, w.mlp_down, h, n, out, pool);
}

}  // namespace qcoder
