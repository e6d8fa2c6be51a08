// Row and elementwise ops (RMSNorm, RoPE, softmax, SwiGLU, axpy), compiled per Highway target.
// Every reduction runs in a fixed order (lane accumulators, then SumOfLanes, then the scalar
// tail), so a row's result depends only on the row.

#if defined(QCODER_KERNELS_CPU_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QCODER_KERNELS_CPU_OPS_INL_H_
#undef QCODER_KERNELS_CPU_OPS_INL_H_
#else
#define QCODER_KERNELS_CPU_OPS_INL_H_
#endif

#include <cmath>
#include <cstring>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace qcoder::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Partial vectors through a zero-padded stack buffer (Highway 1.0.3 has no LoadN/StoreN, and
// masked loads may touch bytes past the end on some targets).
template <class D>
HWY_INLINE hn::Vec<D> LoadTail(D d, const float* p, size_t n) {
  alignas(64) float buf[64] = {};
  std::memcpy(buf, p, n * sizeof(float));
  return hn::Load(d, buf);
}
template <class D>
HWY_INLINE void StoreTail(hn::Vec<D> v, D d, float* p, size_t n) {
  alignas(64) float buf[64];
  hn::Store(v, d, buf);
  std::memcpy(p, buf, n * sizeof(float));
}

inline float SumSquares(const float* x, int64_t n) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    const auto v0 = hn::LoadU(df, x + i), v1 = hn::LoadU(df, x + i + L);
    a0 = hn::MulAdd(v0, v0, a0);
    a1 = hn::MulAdd(v1, v1, a1);
  }
  for (; i + L <= n; i += L) {
    const auto v = hn::LoadU(df, x + i);
    a0 = hn::MulAdd(v, v, a0);
  }
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
  for (; i < n; ++i) s = std::fma(x[i], x[i], s);
  return s;
}

inline void RmsNormImpl(const float* x, const float* w, int64_t n, double eps, float* y) {
  const double ss = SumSquares(x, n);
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const auto vinv = hn::Set(df, inv);
  int64_t i = 0;
  for (; i + L <= n; i += L)
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(df, x + i), vinv), hn::LoadU(df, w + i)), df, y + i);
  for (; i < n; ++i) y[i] = x[i] * inv * w[i];
}

inline void RopeImpl(float* x, int64_t dim, const float* cos, const float* sin) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t half = dim / 2;
  int64_t i = 0;
  for (; i + L <= half; i += L) {
    const auto a = hn::LoadU(df, x + i), b = hn::LoadU(df, x + i + half);
    const auto c = hn::LoadU(df, cos + i), s = hn::LoadU(df, sin + i);
    hn::StoreU(hn::Sub(hn::Mul(a, c), hn::Mul(b, s)), df, x + i);
    hn::StoreU(hn::Add(hn::Mul(a, s), hn::Mul(b, c)), df, x + i + half);
  }
  for (; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos[i] - b * sin[i];
    x[i + half] = a * sin[i] + b * cos[i];
  }
}

inline float MaxOf(const float* x, int64_t n) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  float m = -INFINITY;
  if (n >= L) {
    auto vm = hn::LoadU(df, x);
    for (i = L; i + L <= n; i += L) vm = hn::Max(vm, hn::LoadU(df, x + i));
    m = hn::GetLane(hn::MaxOfLanes(df, vm));
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// x[i] = exp(x[i] - m); returns the sum (fixed order).
inline float ExpSubSum(float* x, int64_t n, float m) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const auto vm = hn::Set(df, m);
  auto acc = hn::Zero(df);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vm));
    hn::StoreU(e, df, x + i);
    acc = hn::Add(acc, e);
  }
  if (i < n) {
    const size_t rest = static_cast<size_t>(n - i);
    const auto e = hn::Exp(df, hn::Sub(LoadTail(df, x + i, rest), vm));
    StoreTail(e, df, x + i, rest);
    acc = hn::Add(acc, hn::IfThenElseZero(hn::FirstN(df, rest), e));
  }
  return hn::GetLane(hn::SumOfLanes(df, acc));
}

inline void ScaleInPlace(float* x, int64_t n, float s) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const auto vs = hn::Set(df, s);
  int64_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), vs), df, x + i);
  for (; i < n; ++i) x[i] *= s;
}

inline void SoftmaxImpl(float* x, int64_t n) {
  if (n <= 0) return;
  const float m = MaxOf(x, n);
  const float sum = ExpSubSum(x, n, m);
  ScaleInPlace(x, n, 1.0f / sum);
}

template <class D, class V>
HWY_INLINE V SiluMul(D d, V g, V u) {
  return hn::Mul(hn::Div(g, hn::Add(hn::Set(d, 1.0f), hn::Exp(d, hn::Neg(g)))), u);
}

inline void SwigluImpl(const float* gate, const float* up, int64_t n, float* out) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + L <= n; i += L)
    hn::StoreU(SiluMul(df, hn::LoadU(df, gate + i), hn::LoadU(df, up + i)), df, out + i);
  if (i < n) {
    const size_t cnt = static_cast<size_t>(n - i);
    StoreTail(SiluMul(df, LoadTail(df, gate + i, cnt), LoadTail(df, up + i, cnt)), df, out + i, cnt);
  }
}

inline void AxpyImpl(float a, const float* x, int64_t n, float* y) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const auto va = hn::Set(df, a);
  int64_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::MulAdd(va, hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  for (; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
}

// Reads n bytes (n a multiple of 256, p 64-byte aligned) as fast as the core can and returns
// a checksum so the loads are not optimized away: the bandwidth probe of `qcoder bench`.
inline uint64_t ReadSweepImpl(const uint8_t* p, size_t n) {
  const hn::ScalableTag<uint64_t> d;
  const size_t L = hn::Lanes(d);
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  const size_t words = n / 8;
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * L <= words; i += 4 * L) {
    a0 = hn::Xor(a0, hn::Load(d, q + i));
    a1 = hn::Xor(a1, hn::Load(d, q + i + L));
    a2 = hn::Xor(a2, hn::Load(d, q + i + 2 * L));
    a3 = hn::Xor(a3, hn::Load(d, q + i + 3 * L));
  }
  uint64_t r = hn::GetLane(hn::SumOfLanes(d, hn::Xor(hn::Xor(a0, a1), hn::Xor(a2, a3))));
  for (; i < words; ++i) r ^= q[i];
  return r;
}

}  // namespace qcoder::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
