// Causal GQA attention (decode and tiled prefill), compiled per Highway target.
//
// One work item = (KV head, tile of up to kTile consecutive queries). For each key block of
// ops::kAttnBlock absolute positions, the item reads every key/value row once and uses it for
// all (query, head) pairs of the tile: the GQA group's query heads share each KV read. The
// per-(query, head) arithmetic is fixed: scores = dot(q, k) * scale; block max m_b; p = exp(s -
// m_b); l_b = sum p; o_b = sum_t p_t v_t; blocks combined in order with the online-softmax
// rescaling. A query therefore gets the same bits in a decode step and inside any prefill tile.
//
// Rows are stored in the cache's format (kernels/kv_format.h). Each key block's rows of the
// item's KV head are decoded into a per-thread float buffer (B x head_dim for keys, the same
// for values) as the block is reached, and then used as float32 rows: the decoded values are
// the scalar reference's bit for bit (ref::kv_decode), so the arithmetic above, and its
// invariance, do not depend on the format. float32 rows are copied the same way: reading each
// head slice of the scattered rows once, up front, beats reading them inside the dot products
// (measured 1.5x at 32K context, docs/KV_CACHE.md).

#if defined(QCODER_KERNELS_CPU_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QCODER_KERNELS_CPU_ATTENTION_INL_H_
#undef QCODER_KERNELS_CPU_ATTENTION_INL_H_
#else
#define QCODER_KERNELS_CPU_ATTENTION_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"
#include "kernels/cpu/ops-inl.h"
#include "kernels/kv_format.h"
#include "kernels/ops.h"

HWY_BEFORE_NAMESPACE();
namespace qcoder::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kAttnTile = 8;  // queries per work item

inline int64_t AttentionItemsImpl(const ops::AttentionShape& s, int64_t n_q) {
  return s.n_kv_heads * ((n_q + kAttnTile - 1) / kAttnTile);
}

// o = o * a + ob * c (lanewise), d values.
inline void Rescale2(float* o, float a, const float* ob, float c, int64_t d) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const auto va = hn::Set(df, a), vc = hn::Set(df, c);
  int64_t i = 0;
  for (; i + L <= d; i += L)
    hn::StoreU(hn::MulAdd(hn::LoadU(df, ob + i), vc, hn::Mul(hn::LoadU(df, o + i), va)), df, o + i);
  for (; i < d; ++i) o[i] = std::fma(ob[i], c, o[i] * a);
}

// out[0, count) = elements [begin, begin + count) of a stored row of n elements (see
// kernels/kv_format.h), bitwise equal to ref::kv_decode: bf16 widens exactly, quantized
// elements are Mul then Add (no fma: -ffp-contract=off in ISO mode).
inline void KvDecodeImpl(const KvFormat& f, const uint8_t* row, int64_t n, int64_t begin,
                         int64_t count, float* out) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du;
  const hn::RebindToSigned<decltype(df)> di;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const auto bf16_at = [](const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return bf16_to_f32(h);
  };
  switch (f.dtype) {
    case KvDtype::kF32:
      std::memcpy(out, row + 4 * begin, static_cast<size_t>(count) * 4);
      return;
    case KvDtype::kBF16: {
      const hn::Rebind<uint16_t, decltype(du)> d16;
      const uint16_t* src = reinterpret_cast<const uint16_t*>(row) + begin;
      int64_t i = 0;
      for (; i + L <= count; i += L)
        hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(d16, src + i)))),
                   df, out + i);
      for (; i < count; ++i) out[i] = bf16_at(row + 2 * (begin + i));
      return;
    }
    case KvDtype::kQ8:
    case KvDtype::kQ4: {
      const int64_t g = f.group, half = g / 2;
      const uint8_t* scales = row + n * f.bits() / 8;
      const uint8_t* biases = scales + 2 * (n / g);
      const hn::Rebind<uint8_t, decltype(du)> d8;
      for (int64_t e0 = begin; e0 < begin + count; e0 += g) {
        const int64_t gi = e0 / g;
        const float sc = bf16_at(scales + 2 * gi), bi = bf16_at(biases + 2 * gi);
        const auto vs = hn::Set(df, sc), vb = hn::Set(df, bi);
        float* dst = out + (e0 - begin);
        const auto deq = [&](auto vq) {  // u32 levels -> float32
          return hn::Add(hn::Mul(hn::ConvertTo(df, hn::BitCast(di, vq)), vs), vb);
        };
        int64_t j = 0;
        if (f.dtype == KvDtype::kQ8) {
          const uint8_t* src = row + e0;
          for (; j + L <= g; j += L) hn::StoreU(deq(hn::PromoteTo(du, hn::LoadU(d8, src + j))), df, dst + j);
          for (; j < g; ++j) {
            const float p = sc * static_cast<float>(src[j]);
            dst[j] = p + bi;
          }
        } else {
          const uint8_t* src = row + gi * half;
          const auto mask = hn::Set(du, 0x0fu);
          for (; j + L <= half; j += L) {
            const auto bytes = hn::PromoteTo(du, hn::LoadU(d8, src + j));
            hn::StoreU(deq(hn::And(bytes, mask)), df, dst + j);
            hn::StoreU(deq(hn::ShiftRight<4>(bytes)), df, dst + half + j);
          }
          for (; j < half; ++j) {
            const float lo = sc * static_cast<float>(src[j] & 0x0f);
            const float hi = sc * static_cast<float>(src[j] >> 4);
            dst[j] = lo + bi;
            dst[half + j] = hi + bi;
          }
        }
      }
      return;
    }
  }
}

inline void AttentionItemImpl(const ops::AttentionShape& s, const float* q, int64_t n_q,
                              int64_t n_keys, const uint8_t* const* k_rows,
                              const uint8_t* const* v_rows, float* out, int64_t item,
                              std::vector<float>& scratch) {
  constexpr int64_t B = ops::kAttnBlock;
  const int64_t hd = s.head_dim, nh = s.n_heads, grp = s.n_heads / s.n_kv_heads;
  const int64_t row_elems = s.n_kv_heads * hd;
  const int64_t tiles = (n_q + kAttnTile - 1) / kAttnTile;
  const int64_t kvh = item / tiles, tile = item % tiles;
  const int64_t i0 = tile * kAttnTile, i1 = std::min(n_q, i0 + kAttnTile);
  const int64_t nq = i1 - i0, pairs = nq * grp;
  const int64_t first_pos = n_keys - n_q;  // position of query 0
  // scratch: scores [pairs][B], o [pairs][hd], ob [pairs][hd], m, l, mb, lb [pairs],
  // then the decoded keys and values of one block [B][hd] each
  scratch.resize(static_cast<size_t>(pairs * (B + 2 * hd + 4) + 2 * B * hd));
  float* scores = scratch.data();
  float* o = scores + pairs * B;
  float* ob = o + pairs * hd;
  float* m = ob + pairs * hd;
  float* l = m + pairs;
  float* mb = l + pairs;
  float* lb = mb + pairs;
  float* kbuf = lb + pairs;
  float* vbuf = kbuf + B * hd;
  // The head's slice of key/value row t (t in the current block [b0, b1)).
  int64_t b0 = 0;
  const auto key = [&](int64_t t) -> const float* { return kbuf + (t - b0) * hd; };
  const auto value = [&](int64_t t) -> const float* { return vbuf + (t - b0) * hd; };
  const int64_t last_pos = first_pos + i1 - 1;
  // Keys visible to pair pr's query inside the block starting at b0.
  const auto visible = [&](int64_t pr, int64_t start) {
    return std::min(start + B, first_pos + i0 + pr / grp + 1) - start;
  };
  for (; b0 <= last_pos; b0 += B) {
    const int64_t b1 = std::min(b0 + B, last_pos + 1);  // keys [b0, b1) are read
    for (int64_t t = b0; t < b1; ++t) {
      KvDecodeImpl(s.kv, k_rows[t], row_elems, kvh * hd, hd, kbuf + (t - b0) * hd);
      KvDecodeImpl(s.kv, v_rows[t], row_elems, kvh * hd, hd, vbuf + (t - b0) * hd);
    }
    // Scores: each key row is read once for every (query, head) of the tile.
    for (int64_t t = b0; t < b1; ++t) {
      const float* kt = key(t);
      for (int64_t i = 0; i < nq; ++i) {
        if (t > first_pos + i0 + i) continue;  // causal: after this query
        const float* qv = q + ((i0 + i) * nh + kvh * grp) * hd;
        float* sc = scores + i * grp * B + (t - b0);
        int64_t h = 0;
        if (hd % static_cast<int64_t>(hn::Lanes(hn::ScalableTag<float>())) == 0) {
          float d4[4];
          for (; h + 4 <= grp; h += 4) {
            DotF32x4(qv + h * hd, qv + (h + 1) * hd, qv + (h + 2) * hd, qv + (h + 3) * hd, kt, hd, d4);
            for (int k = 0; k < 4; ++k) sc[(h + k) * B] = d4[k] * s.scale;
          }
        }
        for (; h < grp; ++h) sc[h * B] = DotF32(qv + h * hd, kt, hd) * s.scale;
      }
    }
    for (int64_t pr = 0; pr < pairs; ++pr) {
      const int64_t vis = visible(pr, b0);
      if (vis <= 0) continue;
      float* sc = scores + pr * B;
      mb[pr] = MaxOf(sc, vis);
      lb[pr] = ExpSubSum(sc, vis, mb[pr]);
      std::fill(ob + pr * hd, ob + (pr + 1) * hd, 0.0f);
    }
    // o_b = sum_t p_t v_t: each value row is read once for the whole tile.
    for (int64_t t = b0; t < b1; ++t) {
      const float* vt = value(t);
      for (int64_t i = 0; i < nq; ++i) {
        if (t > first_pos + i0 + i) continue;
        for (int64_t h = 0; h < grp; ++h) {
          const int64_t pr = i * grp + h;
          AxpyImpl(scores[pr * B + (t - b0)], vt, hd, ob + pr * hd);
        }
      }
    }
    // Online softmax, blocks in order (every query sees key 0, so block 0 starts each pair).
    for (int64_t pr = 0; pr < pairs; ++pr) {
      if (visible(pr, b0) <= 0) continue;
      if (b0 == 0) {
        m[pr] = mb[pr];
        l[pr] = lb[pr];
        std::copy(ob + pr * hd, ob + (pr + 1) * hd, o + pr * hd);
        continue;
      }
      const float mn = std::max(m[pr], mb[pr]);
      const float a = std::exp(m[pr] - mn), c = std::exp(mb[pr] - mn);
      l[pr] = std::fma(lb[pr], c, l[pr] * a);
      m[pr] = mn;
      Rescale2(o + pr * hd, a, ob + pr * hd, c, hd);
    }
  }
  for (int64_t pr = 0; pr < pairs; ++pr) {
    const int64_t i = pr / grp, h = pr % grp;
    float* dst = out + ((i0 + i) * nh + kvh * grp + h) * hd;
    const float inv = 1.0f / l[pr];
    for (int64_t d = 0; d < hd; ++d) dst[d] = o[pr * hd + d] * inv;
  }
}

}  // namespace qcoder::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
