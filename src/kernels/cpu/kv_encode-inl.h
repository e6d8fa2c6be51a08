// KV row encoder (float32 -> the cache's stored row, kernels/kv_format.h), compiled per
// Highway target. Bitwise equal to ref::kv_encode_row for every format and every input:
//  - bf16: the integer round-to-nearest-even of f32_to_bf16 (NaN: quiet bit set) lane-wise.
//  - q8/q4: the group's min/max are SIMD reductions (min and max do not depend on the order
//    when there is no NaN; the sign of a zero min/max cannot change any output, see below),
//    the scale/bias arithmetic is the reference's scalar code, and each element is the same
//    float32 Sub, Div (not a multiply by a reciprocal), round-to-nearest-even, clamp. There is
//    no a*b+c, so fma contraction cannot differ either.
//  - A group whose inputs are not all finite, or whose scale/bias come out 0 or non-finite
//    (a huge all-equal group: edge / s overflows), goes through the reference itself: there
//    the reference's result depends on where a NaN sits, or it converts a NaN level to an
//    integer, which SIMD cannot reproduce lane for lane. Such groups never occur in real
//    keys/values, so the fallback costs nothing in practice.
// Zero signs: wmin/wmax reach the output only through wmax - wmin (a zero's sign does not
// change a nonzero difference, and a zero difference becomes the 1e-7 floor), fabs, and
// edge; a zero edge rounds to q0 = +-0, which leaves bias 0.

#if defined(QCODER_KERNELS_CPU_KV_ENCODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QCODER_KERNELS_CPU_KV_ENCODE_INL_H_
#undef QCODER_KERNELS_CPU_KV_ENCODE_INL_H_
#else
#define QCODER_KERNELS_CPU_KV_ENCODE_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "hwy/highway.h"
#include "kernels/kv_format.h"
#include "kernels/reference/kv_ref.h"

HWY_BEFORE_NAMESPACE();
namespace qcoder::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One group of g elements through the reference (encoded as a one-group row, then copied
// into place): the non-finite cases of the header comment.
inline void KvEncodeGroupRef(const KvFormat& f, const float* x, int64_t gi, uint8_t* row,
                             uint8_t* scales, uint8_t* biases) {
  const int64_t g = f.group, level_bytes = g * f.bits() / 8;
  uint8_t one[128 + 4];  // group <= 128: at most 128 level bytes, one scale, one bias
  ref::kv_encode_row(f, x, g, one);
  std::memcpy(row + gi * level_bytes, one, static_cast<size_t>(level_bytes));
  std::memcpy(scales + 2 * gi, one + level_bytes, 2);
  std::memcpy(biases + 2 * gi, one + level_bytes + 2, 2);
}

inline void KvEncodeRowImpl(const KvFormat& f, const float* x, int64_t n, uint8_t* row) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::RebindToUnsigned<decltype(df)> du;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  switch (f.dtype) {
    case KvDtype::kF32:
      std::memcpy(row, x, static_cast<size_t>(n) * 4);
      return;
    case KvDtype::kBF16: {
      const hn::Rebind<uint16_t, decltype(di)> d16;
      uint16_t* dst = reinterpret_cast<uint16_t*>(row);
      const auto abs_mask = hn::Set(du, 0x7fffffffu), inf = hn::Set(du, 0x7f800000u);
      const auto half = hn::Set(du, 0x7fffu), one = hn::Set(du, 1u), quiet = hn::Set(du, 0x40u);
      int64_t i = 0;
      for (; i + L <= n; i += L) {
        const auto bits = hn::BitCast(du, hn::LoadU(df, x + i));
        // NaN: |bits| > inf as signed int32 (both sides are non-negative there).
        const auto nan = hn::RebindMask(du, hn::Gt(hn::BitCast(di, hn::And(bits, abs_mask)),
                                                   hn::BitCast(di, inf)));
        const auto rounded = hn::ShiftRight<16>(
            hn::Add(bits, hn::Add(half, hn::And(hn::ShiftRight<16>(bits), one))));
        const auto h = hn::IfThenElse(nan, hn::Or(hn::ShiftRight<16>(bits), quiet), rounded);
        // h <= 0xffff, so the saturating int32 -> uint16 demotion is a plain truncation.
        hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, h)), d16, dst + i);
      }
      for (; i < n; ++i) {
        const uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(row + 2 * i, &h, 2);
      }
      return;
    }
    case KvDtype::kQ8:
    case KvDtype::kQ4: {
      const int bits = f.bits();
      const int64_t g = f.group, groups = n / g, half = g / 2;
      // The group loops below take whole vectors and KvEncodeGroupRef's buffer 128 elements:
      // true of every group kv_format_from_bits allows (32, 64, 128); anything else (a
      // hand-made KvFormat) is left to the reference.
      if (g > 128 || g % (2 * L) != 0) {
        ref::kv_encode_row(f, x, n, row);
        return;
      }
      uint8_t* scales = row + n * bits / 8;
      uint8_t* biases = scales + 2 * groups;
      const float levels = static_cast<float>((1 << bits) - 1);
      const hn::Rebind<uint8_t, decltype(di)> d8;
      const auto vzero = hn::Zero(df), vlevels = hn::Set(df, levels);
      for (int64_t gi = 0; gi < groups; ++gi) {
        const float* xg = x + gi * g;
        // min, max and a finiteness probe (x - x is 0 unless x is inf or NaN).
        auto vmin = hn::LoadU(df, xg), vmax = vmin, probe = hn::Sub(vmin, vmin);
        for (int64_t i = L; i < g; i += L) {
          const auto v = hn::LoadU(df, xg + i);
          vmin = hn::Min(vmin, v);
          vmax = hn::Max(vmax, v);
          probe = hn::Add(probe, hn::Sub(v, v));
        }
        if (!hn::AllTrue(df, hn::Eq(probe, vzero))) {
          KvEncodeGroupRef(f, xg, gi, row, scales, biases);
          continue;
        }
        const float wmin = hn::GetLane(hn::MinOfLanes(df, vmin));
        const float wmax = hn::GetLane(hn::MaxOfLanes(df, vmax));
        // The reference's own scale/bias arithmetic (scalar, once per group).
        // (Plain variables: clang 14 cannot capture structured bindings in the lambda below.)
        const ref::KvGroupAffine affine = ref::kv_group_affine(wmin, wmax, levels);
        const float s = affine.scale, bias = affine.bias;
        if (!std::isfinite(s) || s == 0.0f || !std::isfinite(bias)) {
          KvEncodeGroupRef(f, xg, gi, row, scales, biases);
          continue;
        }
        const uint16_t sh = f32_to_bf16(s), bh = f32_to_bf16(bias);
        std::memcpy(scales + 2 * gi, &sh, 2);
        std::memcpy(biases + 2 * gi, &bh, 2);
        const auto vs = hn::Set(df, s), vb = hn::Set(df, bias);
        // x finite, bias finite, s finite and nonzero: the quotient is never NaN, and an
        // infinite one clamps like the reference's.
        const auto level = [&](const float* p) {
          const auto q = hn::Round(hn::Div(hn::Sub(hn::LoadU(df, p), vb), vs));
          return hn::ConvertTo(di, hn::Min(hn::Max(q, vzero), vlevels));
        };
        const auto level1 = [&](float v) {
          const float q = std::clamp(std::rint((v - bias) / s), 0.0f, levels);
          return static_cast<uint32_t>(q);
        };
        if (bits == 8) {
          uint8_t* dst = row + gi * g;
          int64_t i = 0;
          for (; i + L <= g; i += L) hn::StoreU(hn::DemoteTo(d8, level(xg + i)), d8, dst + i);
          for (; i < g; ++i) dst[i] = static_cast<uint8_t>(level1(xg[i]));
        } else {  // byte j: element j in the low nibble, j + g/2 in the high one
          uint8_t* dst = row + gi * half;
          int64_t j = 0;
          for (; j + L <= half; j += L) {
            const auto packed = hn::Or(level(xg + j), hn::ShiftLeft<4>(level(xg + half + j)));
            hn::StoreU(hn::DemoteTo(d8, packed), d8, dst + j);
          }
          for (; j < half; ++j)
            dst[j] = static_cast<uint8_t>(level1(xg[j]) | (level1(xg[half + j]) << 4));
        }
      }
      return;
    }
  }
}

}  // namespace qcoder::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
