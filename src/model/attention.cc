#include <cmath>
#include <vector>

#include "kernels/reference/ops.h"
#include "model/blocks.h"
#include "model/linear.h"

namespace qcoder {

void attention_block(const ModelConfig& c, const LayerWeights& w, int64_t layer, const float* h,
                     const BatchRows& rows, float* out, ThreadPool& pool) {
  const int64_t n = rows.size(), nh = c.num_attention_heads, nkv = c.num_key_value_heads,
                hd = c.head_dim, group = nh / nkv;
  std::vector<float> q(static_cast<size_t>(n * nh * hd)), k(static_cast<size_t>(n * nkv * hd)),
      v(static_cast<size_t>(n * nkv * hd));
  apply_linear(w.q_proj, h, n, q.data(), pool);
  apply_linear(w.k_proj, h, n, k.data(), pool);
  apply_linear(w.v_proj, h, n, v.data(), pool);

  // q/k norm (per head, before RoPE), RoPE, then store keys/values at their positions.
  pool.parallel_for(n, [&](int64_t begin, int64_t end) {
    std::vector<float> cos(static_cast<size_t>(hd / 2)), sin(static_cast<size_t>(hd / 2));
    for (int64_t r = begin; r < end; ++r) {
      ref::rope_angles(rows.pos[r], hd, c.rope_theta, cos.data(), sin.data());
      for (int64_t hh = 0; hh < nh; ++hh) {
        float* x = &q[(r * nh + hh) * hd];
        ref::rms_norm(x, w.q_norm.data(), hd, c.rms_norm_eps, x);
        ref::rope_rotate_half(x, hd, cos.data(), sin.data());
      }
      float* kc = rows.cache[r]->key_row(layer, rows.pos[r]);
      float* vc = rows.cache[r]->value_row(layer, rows.pos[r]);
      for (int64_t hh = 0; hh < nkv; ++hh) {
        float* x = &k[(r * nkv + hh) * hd];
        ref::rms_norm(x, w.k_norm.data(), hd, c.rms_norm_eps, x);
        ref::rope_rotate_half(x, hd, cos.data(), sin.data());
      }
      std::copy(&k[r * nkv * hd], &k[(r + 1) * nkv * hd], kc);
      std::copy(&v[r * nkv * hd], &v[(r + 1) * nkv * hd], vc);
    }
  });

  // Causal attention: row r sees positions 0..pos[r] of its own sequence.
  std::vector<float> attn(static_cast<size_t>(n * nh * hd));
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  pool.parallel_for(n * nh, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    std::vector<const float*> k_rows, v_rows;
    int64_t rows_of = -1;  // the batch row whose key/value pointers are gathered
    for (int64_t i = begin; i < end; ++i) {
      const int64_t r = i / nh, hh = i % nh, kvh = hh / group;
      const int64_t n_keys = rows.pos[r] + 1;
      if (r != rows_of) {
        KvCache& cache = *rows.cache[r];
        k_rows.resize(static_cast<size_t>(n_keys));
        v_rows.resize(static_cast<size_t>(n_keys));
        for (int64_t t = 0; t < n_keys; ++t) {
          k_rows[t] = cache.key_row(layer, t);
          v_rows[t] = cache.value_row(layer, t);
        }
        scratch.resize(static_cast<size_t>(n_keys));
        rows_of = r;
      }
      ref::attend_one_head(&q[i * hd], k_rows.data(), v_rows.data(), kvh * hd, n_keys, hd, scale,
                           scratch.data(), &attn[i * hd]);
    }
  });
  apply_linear(w.o_proj, attn.data(), n, out, pool);
}

}  // namespace qcoder
