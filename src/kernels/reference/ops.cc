#include "kernels/reference/ops.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <vector>

namespace qcoder::ref {

void rms_norm(const float* x, const float* w, int64_t n, double eps, float* y) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv * w[i];
}

void rope_angles(int64_t pos, int64_t dim, double theta, float* cos, float* sin) {
  const int64_t half = dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(dim));
    const double angle = static_cast<double>(pos) * inv_freq;
    cos[i] = static_cast<float>(std::cos(angle));
    sin[i] = static_cast<float>(std::sin(angle));
  }
}

void rope_inv_freq(int64_t dim, double theta, double* inv_freq) {
  for (int64_t i = 0; i < dim / 2; ++i)
    inv_freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(dim));
}

void yarn_inv_freq(int64_t dim, double theta, double factor, double original_ctx, double beta_fast,
                   double beta_slow, bool truncate, double* inv_freq) {
  const double d = static_cast<double>(dim);
  auto correction_dim = [&](double rotations) {
    return d * std::log(original_ctx / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(theta));
  };
  double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
  if (truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, d - 1.0);
  if (low == high) high += 0.001;  // as transformers: no division by zero
  for (int64_t i = 0; i < dim / 2; ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation = 1.0 - ramp;  // weight of the unscaled frequency
    const double pos_freq = std::pow(theta, 2.0 * static_cast<double>(i) / d);
    const double inv_extrapolation = 1.0 / pos_freq, inv_interpolation = 1.0 / (factor * pos_freq);
    inv_freq[i] = inv_interpolation * (1.0 - extrapolation) + inv_extrapolation * extrapolation;
  }
}

double yarn_attention_factor(double factor, double mscale, double mscale_all_dim) {
  auto get = [&](double m) { return factor <= 1.0 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; };
  if (mscale != 0.0 && mscale_all_dim != 0.0) return get(mscale) / get(mscale_all_dim);
  return get(1.0);
}

void rope_angles(int64_t pos, int64_t half, const double* inv_freq, double scale, float* cos, float* sin) {
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(pos) * inv_freq[i];
    cos[i] = static_cast<float>(std::cos(angle) * scale);
    sin[i] = static_cast<float>(std::sin(angle) * scale);
  }
}

void rope_rotate_half(float* x, int64_t dim, const float* cos, const float* sin) {
  const int64_t half = dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos[i] - b * sin[i];
    x[i + half] = a * sin[i] + b * cos[i];
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const float m = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void attend_one_head(const float* q, const float* const* k_rows, const float* const* v_rows,
                     int64_t offset, int64_t n_keys, int64_t head_dim, float scale, float* scratch,
                     float* out) {
  for (int64_t t = 0; t < n_keys; ++t) {
    const float* kt = k_rows[t] + offset;
    float dot = 0.0f;
    for (int64_t d = 0; d < head_dim; ++d) dot += q[d] * kt[d];
    scratch[t] = dot * scale;
  }
  softmax(scratch, n_keys);
  std::fill(out, out + head_dim, 0.0f);
  for (int64_t t = 0; t < n_keys; ++t) {
    const float* vt = v_rows[t] + offset;
    const float p = scratch[t];
    for (int64_t d = 0; d < head_dim; ++d) out[d] += p * vt[d];
  }
}

void top_k_desc(const float* p, int64_t n, int64_t k, int32_t* out) {
  std::vector<int32_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [p](int32_t a, int32_t b) {
    return p[a] > p[b] || (p[a] == p[b] && a > b);
  });
  std::copy(idx.begin(), idx.begin() + k, out);
}

}  // namespace qcoder::ref
