// Scalar reference kernels for the non-matmul ops of the forward pass. Float32 in and out;
// reductions accumulate in double where that is free, so these double as oracles.
#pragma once

#include <cstdint>
#include <span>

namespace qcoder::ref {

// y = x / sqrt(mean(x^2) + eps) * w, over n elements. y may alias x.
void rms_norm(const float* x, const float* w, int64_t n, double eps, float* y);

// Rotate-half RoPE in place on one head of `dim` values: pairs (i, i + dim/2) rotate by
// angle pos * inv_freq[i]. cos/sin are precomputed by the caller (double precision angles).
void rope_rotate_half(float* x, int64_t dim, const float* cos, const float* sin);

// Fills cos/sin [dim/2] for one position: angle = pos * theta^(-2i/dim), computed in double.
void rope_angles(int64_t pos, int64_t dim, double theta, float* cos, float* sin);

// In-place numerically stable softmax over n values (max subtracted, sum in double).
void softmax(float* x, int64_t n);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)).
void swiglu(const float* gate, const float* up, int64_t n, float* out);

// Attention of one query head over n_keys keys/values, all visible. q [head_dim]; key t is
// k_rows[t] + offset (head_dim floats), value t is v_rows[t] + offset: caches hand out one row
// pointer per position, so positions need not be contiguous (paged caches). out [head_dim].
// scores = q.k * scale, softmax in float with a double sum; scratch holds n_keys floats.
void attend_one_head(const float* q, const float* const* k_rows, const float* const* v_rows,
                     int64_t offset, int64_t n_keys, int64_t head_dim, float scale, float* scratch,
                     float* out);

// Indices of the k largest values of p[0..n), best first. Ties: the higher index wins (the
// stable ascending sort MLX's Metal argpartition uses keeps the higher index at the top).
void top_k_desc(const float* p, int64_t n, int64_t k, int32_t* out);

}  // namespace qcoder::ref
