// Matrix products, part 1: activation preparation, weight scales, the float path. Compiled
// once per Highway target (foreach_target); the integer kernels are in matmul_int-inl.h.
//
// Float path (float weights, mxfp8, ...): each row is converted to float32 once, then one
// fixed-order SIMD dot product per token.

#if defined(QCODER_KERNELS_CPU_MATMUL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QCODER_KERNELS_CPU_MATMUL_INL_H_
#undef QCODER_KERNELS_CPU_MATMUL_INL_H_
#else
#define QCODER_KERNELS_CPU_MATMUL_INL_H_
#endif

#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "hwy/highway.h"
#include "kernels/ops.h"
#include "kernels/quant_format.h"
#include "kernels/reference/quant_ref.h"

HWY_BEFORE_NAMESPACE();
namespace qcoder::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------------------
// Layout of the prepared activations for a weight format on this target.
enum class IntKind { kNone, kAffine4, kAffine8, kGeneric };

struct IntLayout {
  IntKind kind = IntKind::kNone;
  int perm = 1;   // 2: each chunk stores its even elements, then its odd ones
  int chunk = 1;  // chunk length (perm 2)
  int cap = 32;   // int16 lanes used by the kernels (a CappedTag bound)
};

inline bool IsIntegerFormat(const QuantSpec& s) {
  return s.mode == QuantMode::kAffine || s.mode == QuantMode::kMxfp4 ||
         s.mode == QuantMode::kNvfp4;
}

inline IntLayout LayoutFor(const QuantSpec& s) {
  IntLayout l;
  if (!IsIntegerFormat(s)) return l;
  l.cap = s.group_size <= 16 ? 8 : (s.group_size <= 32 ? 16 : 32);
  if (s.mode == QuantMode::kAffine && s.bits == 4) {
    l.kind = IntKind::kAffine4;
    l.perm = 2;
    // A 4-bit chunk of 2L elements is L bytes: the low nibbles give the even elements.
    if (l.cap == 8) l.chunk = 2 * static_cast<int>(hn::Lanes(hn::CappedTag<int16_t, 8>()));
    else if (l.cap == 16) l.chunk = 2 * static_cast<int>(hn::Lanes(hn::CappedTag<int16_t, 16>()));
    else l.chunk = 2 * static_cast<int>(hn::Lanes(hn::CappedTag<int16_t, 32>()));
  } else if (s.mode == QuantMode::kAffine && s.bits == 8) {
    l.kind = IntKind::kAffine8;
  } else {
    l.kind = IntKind::kGeneric;
  }
  return l;
}

// ---------------------------------------------------------------------------------------
// Activation preparation.

// |xi| <= kXMax, so that xi = 256 * xh + xl with both halves in int8 (see ops::PreparedActs);
// kXMax8 with 8-bit activations (--fast).
constexpr float kXMax = 32639.0f;
constexpr float kXMax8 = 127.0f;

// The 4-bit decode kernel on raw nibbles (vpdpbusd) needs AVX512-VNNI and whole 128-element
// blocks of one or two groups.
inline bool UsePlanes(const IntLayout& lay, int64_t cols, int group) {
#if HWY_TARGET == HWY_AVX3_DL
  return lay.kind == IntKind::kAffine4 && group >= 64 && cols % 128 == 0;
#else
  (void)lay, (void)cols, (void)group;
  return false;
#endif
}

// The matrix-matrix kernel on bytes (u8 codes x s8 activation planes, vpdpbusd) needs
// AVX512-VNNI and affine codes, which are all unsigned.
constexpr int64_t kX8MinRows = 32;
inline bool UseX8(const QuantSpec& s) {
#if HWY_TARGET == HWY_AVX3_DL
  return s.mode == QuantMode::kAffine;
#else
  (void)s;
  return false;
#endif
}

// xi = 256 * xh + xl with xl = xi's low byte as int8 and xh in int8 (|xi| <= kXMax).
struct Int8Planes {
  int8_t h, l;
};
inline Int8Planes SplitInt16(int v) {
  const auto l = static_cast<int8_t>(static_cast<uint8_t>(v & 0xff));
  return {static_cast<int8_t>((v - l) / 256), l};
}

// amax over n floats (n a multiple of 16 or the whole group; groups are >= 16).
inline float AbsMax(const float* x, int64_t n) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  auto m = hn::Zero(df);
  for (; i + L <= n; i += L) m = hn::Max(m, hn::Abs(hn::LoadU(df, x + i)));
  float r = hn::GetLane(hn::MaxOfLanes(df, m));
  for (; i < n; ++i) r = std::max(r, std::fabs(x[i]));
  // A NaN anywhere poisons the group (the result must be NaN, as in float arithmetic).
  for (int64_t j = 0; j < n; ++j)
    if (std::isnan(x[j])) return x[j];
  return r;
}

// Quantizes one group: dst[i] = round(x[i] * inv) (round half to even), as int16.
inline int32_t QuantizeGroup(const float* x, int64_t n, float inv, int16_t* dst) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int16_t, decltype(df)> d16;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const auto vinv = hn::Set(df, inv);
  auto vsum = hn::Zero(di);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto q = hn::NearestInt(hn::Mul(hn::LoadU(df, x + i), vinv));
    vsum = hn::Add(vsum, q);
    hn::StoreU(hn::DemoteTo(d16, q), d16, dst + i);
  }
  int32_t sum = hn::GetLane(hn::SumOfLanes(di, vsum));
  for (; i < n; ++i) {
    const auto q = static_cast<int32_t>(std::nearbyint(x[i] * inv));
    dst[i] = static_cast<int16_t>(q);
    sum += q;
  }
  return sum;
}

inline void PrepareActsInitImpl(const QMatrix& m, const float* X, int64_t rows,
                                ops::PreparedActs& out, const int32_t* row_ids) {
  const int64_t cols = m.cols;
  out.rows = rows;
  out.cols = cols;
  out.integer = IsIntegerFormat(m.spec);
  if (!out.integer) {
    out.groups = 0;
    if (row_ids) {
      out.xf_store.resize(static_cast<size_t>(rows * cols));
      out.xf = out.xf_store.data();
    } else {
      out.xf = X;
    }
    return;
  }
  const IntLayout lay = LayoutFor(m.spec);
  const int64_t G = cols / m.spec.group_size;
  out.group_size = m.spec.group_size;
  out.groups = G;
  out.perm = lay.perm;
  out.chunk = lay.chunk;
  out.xi.resize(static_cast<size_t>(rows * cols));
  out.sx.resize(static_cast<size_t>(rows * G));
  out.xsum.resize(static_cast<size_t>(rows * G));
  out.act_bits = m.act_bits == 8 ? 8 : 16;
  const int64_t plane_count = out.act_bits == 8 ? 1 : 2;
  if (UsePlanes(lay, cols, m.spec.group_size)) out.planes.resize(static_cast<size_t>(rows * cols * plane_count));
  else out.planes.clear();
  // The byte planes serve only the matrix-matrix kernel (>= 8 tokens of one matrix): a few
  // prepared rows (decode) skip them, and a product that still gets >= 8 tokens through an
  // index list with repeats takes the int16 kernel on xi (the same integers).
  if (UseX8(m.spec) && rows >= kX8MinRows) out.x8.resize(static_cast<size_t>(rows * cols * plane_count));
  else out.x8.clear();
}

inline void PrepareActsRowsImpl(const QMatrix& m, const float* X, ops::PreparedActs& out,
                                int64_t r0, int64_t r1, const int32_t* row_ids) {
  const int64_t cols = out.cols;
  if (!out.integer) {
    if (row_ids)
      for (int64_t i = r0; i < r1; ++i)
        std::memcpy(&out.xf_store[i * cols], X + row_ids[i] * cols, sizeof(float) * cols);
    return;
  }
  const int group = out.group_size;
  const int64_t G = out.groups;
  const int perm = out.perm, C = out.chunk;
  const float xmax = out.act_bits == 8 ? kXMax8 : kXMax;
  thread_local std::vector<int16_t> tmp;
  tmp.resize(static_cast<size_t>(group));
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = X + (row_ids ? row_ids[r] : r) * cols;
    int16_t* xi = &out.xi[r * cols];
    for (int64_t g = 0; g < G; ++g) {
      const float* xg = x + g * group;
      const float amax = AbsMax(xg, group);
      int16_t* dst = perm == 2 ? tmp.data() : xi + g * group;
      float sx = 0.0f;
      int32_t sum = 0;
      if (amax > 0.0f && std::isfinite(amax)) {
        sx = amax / xmax;
        sum = QuantizeGroup(xg, group, xmax / amax, dst);
      } else {
        // All zeros, or non-finite: zeros with a scale that carries the NaN/inf along.
        sx = amax == 0.0f ? 0.0f : amax;
        std::fill(dst, dst + group, int16_t{0});
        if (amax != 0.0f) dst[0] = 1;
      }
      if (perm == 2) {
        int16_t* out_g = xi + g * group;
        const int half = C / 2;
        for (int c0 = 0; c0 < group; c0 += C)
          for (int j = 0; j < half; ++j) {
            out_g[c0 + j] = dst[c0 + 2 * j];
            out_g[c0 + half + j] = dst[c0 + 2 * j + 1];
          }
      }
      out.sx[r * G + g] = sx;
      out.xsum[r * G + g] = sx * static_cast<float>(sum);
      if (!out.x8.empty()) {
        const int16_t* src = xi + g * group;
        if (out.act_bits == 8) {
          int8_t* d8 = &out.x8[r * cols + g * group];
          for (int64_t i = 0; i < group; ++i) d8[i] = static_cast<int8_t>(src[i]);
        } else {
          int8_t* dh = &out.x8[r * cols * 2 + g * group];
          int8_t* dl = dh + cols;
          for (int64_t i = 0; i < group; ++i) {
            const Int8Planes p = SplitInt16(src[i]);
            dh[i] = p.h;
            dl[i] = p.l;
          }
        }
      }
      if (!out.planes.empty() && out.act_bits == 8) {
        // One plane per block of 128 elements: entries j < 64 hold element 2j, then 2j + 1.
        const int64_t e0 = g * group;
        int8_t* blk = &out.planes[r * cols + (e0 / 128) * 128];
        const int64_t o = e0 % 128;
        for (int64_t i = 0; i < group; ++i) {
          const int64_t e = o + i;
          blk[(e % 2) * 64 + e / 2] = static_cast<int8_t>(dst[i]);
        }
      } else if (!out.planes.empty()) {
        // Block of 128 elements b = (g * group) / 128; this group's elements sit at offset
        // o within it. Plane entries j < 64 hold elements 2j (even) / 2j + 1 (odd).
        const int64_t e0 = g * group;
        int8_t* blk = &out.planes[r * cols * 2 + (e0 / 128) * 256];
        const int64_t o = e0 % 128;
        for (int64_t i = 0; i < group; ++i) {
          const Int8Planes p = SplitInt16(dst[i]);
          const int64_t e = o + i, j = e / 2, odd = e % 2;
          blk[odd * 64 + j] = p.h;
          blk[128 + odd * 64 + j] = p.l;
        }
      }
    }
  }
}

inline void PrepareActsImpl(const QMatrix& m, const float* X, int64_t rows, ops::PreparedActs& out,
                            const int32_t* row_ids) {
  PrepareActsInitImpl(m, X, rows, out, row_ids);
  PrepareActsRowsImpl(m, X, out, 0, rows, row_ids);
}

// ---------------------------------------------------------------------------------------
// Row scales: sw[g] (fp4: scale / 2, since codes are widened as 2 * e2m1) and biases[g].

// G float values of dtype t (F32, F16 or BF16) from unaligned bytes.
inline void LoadFloats(DType t, const uint8_t* p, int64_t G, float* out) {
  if (t == DType::kBF16) {
    const hn::ScalableTag<float> df;
    const hn::Rebind<uint16_t, decltype(df)> du16;
    const hn::RebindToUnsigned<decltype(df)> du32;
    const int64_t L = static_cast<int64_t>(hn::Lanes(df));
    int64_t g = 0;
    for (; g + L <= G; g += L) {
      const auto h = hn::PromoteTo(du32, hn::LoadU(du16, reinterpret_cast<const uint16_t*>(p) + g));
      hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(h)), df, out + g);
    }
    for (; g < G; ++g) out[g] = bf16_to_f32(load_u16(p + 2 * g));
  } else if (t == DType::kF32) {
    std::memcpy(out, p, sizeof(float) * static_cast<size_t>(G));
  } else {
    for (int64_t g = 0; g < G; ++g) out[g] = f16_to_f32(load_u16(p + 2 * g));
  }
}

inline void DecodeRowScales(const QMatrix& m, int64_t r, float* sw, float* bias) {
  const int64_t G = m.cols / m.spec.group_size;
  const uint8_t* s = m.scales + static_cast<size_t>(r) * m.scales_row_bytes;
  switch (m.spec.mode) {
    case QuantMode::kAffine:
      LoadFloats(m.scales_dtype, s, G, sw);
      LoadFloats(m.biases_dtype, m.biases + static_cast<size_t>(r) * m.biases_row_bytes, G, bias);
      return;
    case QuantMode::kMxfp4:
      for (int64_t g = 0; g < G; ++g) sw[g] = mx_scale_to_f32(s[g]) * 0.5f;
      return;
    case QuantMode::kNvfp4:
      for (int64_t g = 0; g < G; ++g) sw[g] = fp8_e4m3_to_f32(s[g]) * 0.5f;
      return;
    default:
      return;
  }
}

// out[i] = sum of the lanes of v_i, i < 4: a transpose-and-add tree on x86 (int32 or float;
// each output is a fixed tree over its own vector's lanes).
template <class D32, class V32, typename T>
HWY_INLINE void Reduce4(D32 d32, V32 v0, V32 v1, V32 v2, V32 v3, T* out) {
#if HWY_TARGET == HWY_SCALAR
  out[0] = hn::GetLane(v0);
  out[1] = hn::GetLane(v1);
  out[2] = hn::GetLane(v2);
  out[3] = hn::GetLane(v3);
#else
  if constexpr (hn::MaxLanes(D32()) < 4) {
    out[0] = hn::GetLane(hn::SumOfLanes(d32, v0));
    out[1] = hn::GetLane(hn::SumOfLanes(d32, v1));
    out[2] = hn::GetLane(hn::SumOfLanes(d32, v2));
    out[3] = hn::GetLane(hn::SumOfLanes(d32, v3));
  } else {
    // Per 128-bit block: a = [v0 0+2, v1 0+2, v0 1+3, v1 1+3], b likewise for v2, v3.
    const auto a = hn::Add(hn::InterleaveLower(d32, v0, v1), hn::InterleaveUpper(d32, v0, v1));
    const auto b = hn::Add(hn::InterleaveLower(d32, v2, v3), hn::InterleaveUpper(d32, v2, v3));
    const hn::Repartition<uint64_t, D32> d64;
    const auto a64 = hn::BitCast(d64, a), b64 = hn::BitCast(d64, b);
    // Per block: [v0, v1, v2, v3] block sums; then the blocks are added.
    const auto c = hn::Add(hn::BitCast(d32, hn::InterleaveLower(d64, a64, b64)),
                           hn::BitCast(d32, hn::InterleaveUpper(d64, a64, b64)));
    if constexpr (hn::MaxLanes(D32()) == 16) {
      const hn::Half<D32> dh;
      const auto h = hn::Add(hn::LowerHalf(dh, c), hn::UpperHalf(dh, c));
      const hn::Half<decltype(dh)> dq;
      hn::StoreU(hn::Add(hn::LowerHalf(dq, h), hn::UpperHalf(dq, h)), dq, out);
    } else if constexpr (hn::MaxLanes(D32()) == 8) {
      const hn::Half<D32> dh;
      hn::StoreU(hn::Add(hn::LowerHalf(dh, c), hn::UpperHalf(dh, c)), dh, out);
    } else {
      hn::StoreU(c, d32, out);
    }
  }
#endif
}

// ---------------------------------------------------------------------------------------
// Float path.

// Fixed-order dot product: four lane accumulators over 4L blocks, then one over L blocks,
// summed in a fixed tree, then the scalar tail.
inline float DotF32(const float* w, const float* x, int64_t n) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    a0 = hn::MulAdd(hn::LoadU(df, w + i), hn::LoadU(df, x + i), a0);
    a1 = hn::MulAdd(hn::LoadU(df, w + i + L), hn::LoadU(df, x + i + L), a1);
    a2 = hn::MulAdd(hn::LoadU(df, w + i + 2 * L), hn::LoadU(df, x + i + 2 * L), a2);
    a3 = hn::MulAdd(hn::LoadU(df, w + i + 3 * L), hn::LoadU(df, x + i + 3 * L), a3);
  }
  for (; i + L <= n; i += L) a0 = hn::MulAdd(hn::LoadU(df, w + i), hn::LoadU(df, x + i), a0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) s = std::fma(w[i], x[i], s);
  return s;
}

// Four dot products with one vector w (n a multiple of the lane count): one accumulator
// each, reduced together. Each result depends only on its own (q, w) pair.
inline void DotF32x4(const float* q0, const float* q1, const float* q2, const float* q3,
                     const float* w, int64_t n, float* out) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  for (int64_t i = 0; i < n; i += L) {
    const auto wv = hn::LoadU(df, w + i);
    a0 = hn::MulAdd(hn::LoadU(df, q0 + i), wv, a0);
    a1 = hn::MulAdd(hn::LoadU(df, q1 + i), wv, a1);
    a2 = hn::MulAdd(hn::LoadU(df, q2 + i), wv, a2);
    a3 = hn::MulAdd(hn::LoadU(df, q3 + i), wv, a3);
  }
  Reduce4(df, a0, a1, a2, a3, out);
}

// Row r of a float or non-integer quantized matrix as float32 (bitwise the reference's
// dequantization). Returns a pointer to the row (f32 data is used in place).
inline const float* FloatRow(const QMatrix& m, int64_t r, float* scratch) {
  const uint8_t* w = m.data + static_cast<size_t>(r) * m.row_bytes;
  if (!m.spec.quantized() && m.dtype == DType::kF32) {
    if (reinterpret_cast<uintptr_t>(w) % alignof(float) == 0) return reinterpret_cast<const float*>(w);
    std::memcpy(scratch, w, sizeof(float) * m.cols);
    return scratch;
  }
  if (!m.spec.quantized() && m.dtype == DType::kBF16) {
    const hn::ScalableTag<float> df;
    const hn::Rebind<uint16_t, decltype(df)> du16;
    const hn::RebindToUnsigned<decltype(df)> du32;
    const int64_t L = static_cast<int64_t>(hn::Lanes(df));
    int64_t c = 0;
    for (; c + L <= m.cols; c += L) {
      const auto h = hn::PromoteTo(du32, hn::LoadU(du16, reinterpret_cast<const uint16_t*>(w) + c));
      hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(h)), df, scratch + c);
    }
    for (; c < m.cols; ++c) scratch[c] = bf16_to_f32(load_u16(w + 2 * c));
    return scratch;
  }
  ref::dequantize_row(m, r, scratch);
  return scratch;
}

inline void MatMulFloat(const QMatrix& m, const ops::PreparedActs& acts, const int32_t* tokens,
                        int64_t n, float* Y, int64_t ldy, int64_t r0, int64_t r1) {
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(m.cols));
  for (int64_t r = r0; r < r1; ++r) {
    const float* w = FloatRow(m, r, row.data());
    for (int64_t t = 0; t < n; ++t)
      Y[t * ldy + r] = DotF32(w, acts.xf + (tokens ? tokens[t] : t) * m.cols, m.cols);
  }
}

}  // namespace qcoder::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
