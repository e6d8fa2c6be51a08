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

// RoPE inverse frequencies [dim/2] in double: theta^(-2i/dim) (exactly the values the
// function above uses).
void rope_inv_freq(int64_t dim, double theta, double* inv_freq);

// YaRN inverse frequencies [dim/2] in double (transformers' _compute_yarn_parameters after the
// fix of huggingface/transformers#38224, mlx-lm's YarnRoPE): with c(r) = dim ln(L0 / (2 pi r))
// / (2 ln theta), low = max(c(beta_fast), 0), high = min(c(beta_slow), dim - 1), floored /
// ceiled when `truncate`; ramp_i = clamp((i - low) / (high - low), 0, 1) (high += 0.001 when
// equal); inv_freq_i = theta^(-2i/dim) * (ramp_i / factor + (1 - ramp_i)).
void yarn_inv_freq(int64_t dim, double theta, double factor, double original_ctx, double beta_fast,
                   double beta_slow, bool truncate, double* inv_freq);

// YaRN attention factor from the scaling factor: 0.1 m ln(s) + 1 for s > 1 (else 1), with
// m = mscale / mscale_all_dim when both are non-zero (the ratio of the two), else m = 1.
double yarn_attention_factor(double factor, double mscale, double mscale_all_dim);

// Fills cos/sin [half] for one position from precomputed inverse frequencies: angle =
// pos * inv_freq[i] in double; cos/sin are multiplied by `scale` (the attention factor, so
// q.k grows by scale^2, as transformers does) before rounding to float. scale 1 gives exactly
// the rope_angles values above.
void rope_angles(int64_t pos, int64_t half, const double* inv_freq, double scale, float* cos, float* sin);

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
