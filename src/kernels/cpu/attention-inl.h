// Causal GQA attention (decode and tiled prefill), compiled per Highway target.
//
// The keys of a query are split into chunks of ops::kAttnChunk absolute positions (a fixed
// size: it depends neither on the thread count nor on the number of queries), each chunk into
// blocks of ops::kAttnBlock. For each key block the work reads every key/value row once and uses
// it for all (query, head) pairs of a tile of up to kAttnTile consecutive queries: the GQA
// group's query heads share each KV read. The per-(query, head) arithmetic is fixed: scores =
// dot(q, k) * scale; block max m_b; p = exp(s - m_b); l_b = sum p; o_b = sum_t p_t v_t; blocks
// combined in order within a chunk with the online-softmax rescaling, and the chunks' states
// combined in chunk order with the same rescaling. Decode (one query, or a few) runs the chunks
// of a KV head as separate work items (flash-decoding: long contexts use every thread) and
// folds them afterwards; prefill tiles fold them inside the item. Either way the same chunk
// computations are folded in the same order, so a query gets the same bits in a decode step
// and inside any prefill tile, whatever the threads.
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
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"
#include "kernels/cpu/ops-inl.h"
#include "kernels/kv_format.h"
#include "kernels/ops.h"

HWY_BEFORE_NAMESPACE();
namespace qcoder::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kAttnTile = 8;  // queries per work item

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

// ob[h * hd + d] = the sum over t < n, in order, of p[h * ldp + t] * v[t * hd + d] for NH heads
// (from zero, one fma per term: per lane the exact sequence of repeated AxpyImpl calls), with
// the sums of 4 vectors of each head kept in registers while the value rows stream past.
template <int NH>
inline void WeightedValues(const float* p, int64_t ldp, const float* v, int64_t hd, int64_t n, float* ob) {
  const hn::ScalableTag<float> df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  int64_t d = 0;
  for (; d + 4 * L <= hd; d += 4 * L) {
    decltype(hn::Zero(df)) acc[NH][4];
    for (int h = 0; h < NH; ++h)
      for (int k = 0; k < 4; ++k) acc[h][k] = hn::Zero(df);
    for (int64_t t = 0; t < n; ++t) {
      const float* vt = v + t * hd + d;
      const auto v0 = hn::LoadU(df, vt), v1 = hn::LoadU(df, vt + L);
      const auto v2 = hn::LoadU(df, vt + 2 * L), v3 = hn::LoadU(df, vt + 3 * L);
      for (int h = 0; h < NH; ++h) {
        const auto a = hn::Set(df, p[h * ldp + t]);
        acc[h][0] = hn::MulAdd(a, v0, acc[h][0]);
        acc[h][1] = hn::MulAdd(a, v1, acc[h][1]);
        acc[h][2] = hn::MulAdd(a, v2, acc[h][2]);
        acc[h][3] = hn::MulAdd(a, v3, acc[h][3]);
      }
    }
    for (int h = 0; h < NH; ++h)
      for (int k = 0; k < 4; ++k) hn::StoreU(acc[h][k], df, ob + h * hd + d + k * L);
  }
  for (; d + L <= hd; d += L) {
    decltype(hn::Zero(df)) acc[NH];
    for (int h = 0; h < NH; ++h) acc[h] = hn::Zero(df);
    for (int64_t t = 0; t < n; ++t) {
      const auto vv = hn::LoadU(df, v + t * hd + d);
      for (int h = 0; h < NH; ++h) acc[h] = hn::MulAdd(hn::Set(df, p[h * ldp + t]), vv, acc[h]);
    }
    for (int h = 0; h < NH; ++h) hn::StoreU(acc[h], df, ob + h * hd + d);
  }
  for (; d < hd; ++d)
    for (int h = 0; h < NH; ++h) {
      float a = 0.0f;
      for (int64_t t = 0; t < n; ++t) a = std::fma(p[h * ldp + t], v[t * hd + d], a);
      ob[h * hd + d] = a;
    }
}

// Keys [k0, k1) (k0 a multiple of ops::kAttnChunk, k1 - k0 <= kAttnChunk) for the queries
// [i0, i1) of KV heads [h0, h1): per KV head j = kvh - h0 and (query, head) pair pr whose
// query sits at or after k0, the chunk's softmax state m[j * pairs + pr], l[j * pairs + pr],
// o[(j * pairs + pr) * hd] (online softmax over the chunk's key blocks in order, starting from
// the block at k0). Pairs whose query is before k0 are untouched. Each key block is done for
// every KV head before the next, its rows' head slices decoded one row after the other (a
// front-to-back read of each row: measured 1.3-1.4x faster at 32K context than reading one
// head's slice of every row per pass).
// work (per KV head, AttnWorkFloats apart): scores [pairs][B], ob [pairs][hd], mb, lb [pairs],
// then the decoded keys and values of one block [B][hd] each.
inline int64_t AttnWorkFloats(int64_t pairs, int64_t hd) {
  return pairs * (ops::kAttnBlock + hd + 2) + 2 * ops::kAttnBlock * hd;
}

inline void AttentionChunk(const ops::AttentionShape& s, const float* q, int64_t n_q, int64_t n_keys,
                           const uint8_t* const* k_rows, const uint8_t* const* v_rows, int64_t h0,
                           int64_t h1, int64_t i0, int64_t i1, int64_t k0, int64_t k1, float* m_all,
                           float* l_all, float* o_all, float* work_all) {
  constexpr int64_t B = ops::kAttnBlock;
  const int64_t hd = s.head_dim, nh = s.n_heads, grp = s.n_heads / s.n_kv_heads;
  const int64_t row_elems = s.n_kv_heads * hd;
  const int64_t nq = i1 - i0, pairs = nq * grp;
  const int64_t first_pos = n_keys - n_q;  // position of query 0
  const int64_t last_pos = first_pos + i1 - 1;
  // Keys visible to pair pr's query inside the block starting at start.
  const auto visible = [&](int64_t pr, int64_t start) {
    return std::min(start + B, first_pos + i0 + pr / grp + 1) - start;
  };
  const int64_t end = std::min(k1, last_pos + 1);
  // A head's slice of a stored row (its codes; a quantized row's scales are a few bytes
  // elsewhere). Rows are reached through pointers; the next block's slices are prefetched
  // while this block is computed (at 32K context: equal or up to ~10% faster, paired runs).
  const int64_t slice_bytes = hd * s.kv.bits() / 8;
  const auto prefetch_slice = [&](int64_t t, int64_t kvh) {
    const int64_t begin = kvh * slice_bytes;
    for (int64_t off = 0; off < slice_bytes; off += 64) {
      hwy::Prefetch(k_rows[t] + begin + off);
      hwy::Prefetch(v_rows[t] + begin + off);
    }
  };
  const int64_t pf_end = last_pos + 1;  // also into the next chunk
  for (int64_t t = k0; t < std::min(k0 + B, pf_end); ++t)
    for (int64_t kvh = h0; kvh < h1; ++kvh) prefetch_slice(t, kvh);
  for (int64_t b0 = k0; b0 < end; b0 += B) {
    const int64_t b1 = std::min(b0 + B, end);  // keys [b0, b1) are read
    // Every head's slice of each row, one row after the other (a contiguous read of the rows'
    // [h0, h1) heads), into the heads' block buffers.
    for (int64_t t = b0; t < b1; ++t)
      for (int64_t kvh = h0; kvh < h1; ++kvh) {
        float* kb = work_all + (kvh - h0) * AttnWorkFloats(pairs, hd) + pairs * (B + hd + 2);
        KvDecodeImpl(s.kv, k_rows[t], row_elems, kvh * hd, hd, kb + (t - b0) * hd);
        KvDecodeImpl(s.kv, v_rows[t], row_elems, kvh * hd, hd, kb + B * hd + (t - b0) * hd);
      }
    for (int64_t kvh = h0; kvh < h1; ++kvh) {
      const int64_t j = kvh - h0;
      float* m = m_all + j * pairs;
      float* l = l_all + j * pairs;
      float* o = o_all + j * pairs * hd;
      float* scores = work_all + j * AttnWorkFloats(pairs, hd);
      float* ob = scores + pairs * B;
      float* mb = ob + pairs * hd;
      float* lb = mb + pairs;
      float* kbuf = lb + pairs;
      float* vbuf = kbuf + B * hd;
      // Scores: each key row is read once for every (query, head) of the tile. The next
      // block's rows are prefetched one head's slice per key, spread over the block's work.
      for (int64_t t = b0; t < b1; ++t) {
        if (t + B < pf_end) prefetch_slice(t + B, kvh);
        const float* kt = kbuf + (t - b0) * hd;
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
      }
      // o_b = sum_t p_t v_t, up to four heads of a query at a time with the sums in registers.
      for (int64_t i = 0; i < nq; ++i) {
        const int64_t vis = visible(i * grp, b0);
        if (vis <= 0) continue;
        for (int64_t h = 0; h < grp; h += 4) {
          const int64_t pr = i * grp + h;
          switch (std::min<int64_t>(4, grp - h)) {
            case 1: WeightedValues<1>(scores + pr * B, B, vbuf, hd, vis, ob + pr * hd); break;
            case 2: WeightedValues<2>(scores + pr * B, B, vbuf, hd, vis, ob + pr * hd); break;
            case 3: WeightedValues<3>(scores + pr * B, B, vbuf, hd, vis, ob + pr * hd); break;
            default: WeightedValues<4>(scores + pr * B, B, vbuf, hd, vis, ob + pr * hd); break;
          }
        }
      }
      // Online softmax, blocks in order (every query at or after k0 sees key k0, so the chunk's
      // first block starts each pair).
      for (int64_t pr = 0; pr < pairs; ++pr) {
        if (visible(pr, b0) <= 0) continue;
        if (b0 == k0) {
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
  }
}

// Folds chunk state (mc, lc, oc) into the running state (M, L, O) of one pair: chunks in
// order, the first one copied (the same rescaling as between blocks).
inline void CombineChunk(bool first, float& M, float& L, float* O, float mc, float lc, const float* oc,
                         int64_t hd) {
  if (first) {
    M = mc;
    L = lc;
    std::copy(oc, oc + hd, O);
    return;
  }
  const float mn = std::max(M, mc);
  const float a = std::exp(M - mn), c = std::exp(mc - mn);
  L = std::fma(lc, c, L * a);
  M = mn;
  Rescale2(O, a, oc, c, hd);
}

inline void NormalizeRow(const float* O, float L, int64_t hd, float* dst) {
  const float inv = 1.0f / L;
  for (int64_t d = 0; d < hd; ++d) dst[d] = O[d] * inv;
}

// Split calls: one query tile (n_q <= kAttnTile) over more than one key chunk; the items are
// the chunks (every KV head), each writing its chunk states to the partial buffer, and
// AttentionCombineImpl folds them in chunk order. Otherwise the items are (KV head, query
// tile), each folding its chunks in the same order itself: either way a pair's bits are those
// of the same chunk computations folded by CombineChunk in chunk order.
inline int64_t AttnChunks(int64_t n_keys) { return (n_keys + ops::kAttnChunk - 1) / ops::kAttnChunk; }
inline bool AttnSplit(int64_t n_q, int64_t n_keys) { return n_q <= kAttnTile && AttnChunks(n_keys) > 1; }

inline ops::AttentionWork AttentionWorkImpl(const ops::AttentionShape& s, int64_t n_q, int64_t n_keys) {
  ops::AttentionWork w;
  if (AttnSplit(n_q, n_keys)) {
    const int64_t pairs = n_q * (s.n_heads / s.n_kv_heads);
    w.items = AttnChunks(n_keys);  // each item: one chunk, every KV head
    w.partial_floats = s.n_kv_heads * w.items * pairs * (s.head_dim + 2);
    w.combine_items = s.n_kv_heads;
  } else {
    w.items = s.n_kv_heads * ((n_q + kAttnTile - 1) / kAttnTile);
  }
  return w;
}

inline void AttentionItemImpl(const ops::AttentionShape& s, const float* q, int64_t n_q,
                              int64_t n_keys, const uint8_t* const* k_rows,
                              const uint8_t* const* v_rows, float* out, float* partials, int64_t item,
                              std::vector<float>& scratch) {
  const int64_t hd = s.head_dim, nh = s.n_heads, grp = s.n_heads / s.n_kv_heads;
  const int64_t first_pos = n_keys - n_q;
  if (AttnSplit(n_q, n_keys)) {
    const int64_t chunks = AttnChunks(n_keys);
    const int64_t c = item, pairs = n_q * grp;
    const int64_t k0 = c * ops::kAttnChunk, k1 = std::min(n_keys, k0 + ops::kAttnChunk);
    const int64_t nkv = s.n_kv_heads, wf = nkv * AttnWorkFloats(pairs, hd);
    scratch.resize(static_cast<size_t>(wf + nkv * pairs * (hd + 2)));
    float* m = scratch.data() + wf;
    float* l = m + nkv * pairs;
    float* o = l + nkv * pairs;
    AttentionChunk(s, q, n_q, n_keys, k_rows, v_rows, 0, nkv, 0, n_q, k0, k1, m, l, o, scratch.data());
    // Partial slot of (kvh, c, pair): m, l, o[hd].
    for (int64_t kvh = 0; kvh < nkv; ++kvh)
      for (int64_t pr = 0; pr < pairs; ++pr) {
        if (first_pos + pr / grp < k0) continue;  // the query is before the chunk
        float* slot = partials + ((kvh * chunks + c) * pairs + pr) * (hd + 2);
        const int64_t at = kvh * pairs + pr;
        slot[0] = m[at];
        slot[1] = l[at];
        std::copy(o + at * hd, o + (at + 1) * hd, slot + 2);
      }
    return;
  }
  const int64_t tiles = (n_q + kAttnTile - 1) / kAttnTile;
  const int64_t kvh = item / tiles, tile = item % tiles;
  const int64_t i0 = tile * kAttnTile, i1 = std::min(n_q, i0 + kAttnTile);
  const int64_t pairs = (i1 - i0) * grp;
  // scratch: work, chunk state m, l [pairs], o [pairs][hd], running M, L [pairs], O [pairs][hd]
  const int64_t wf = AttnWorkFloats(pairs, hd);
  scratch.resize(static_cast<size_t>(wf + 2 * pairs * (hd + 2)));
  float* m = scratch.data() + wf;
  float* l = m + pairs;
  float* o = l + pairs;
  float* M = o + pairs * hd;
  float* L = M + pairs;
  float* O = L + pairs;
  const int64_t last_pos = first_pos + i1 - 1;
  for (int64_t k0 = 0; k0 <= last_pos; k0 += ops::kAttnChunk) {
    AttentionChunk(s, q, n_q, n_keys, k_rows, v_rows, kvh, kvh + 1, i0, i1, k0, k0 + ops::kAttnChunk, m, l,
                   o, scratch.data());
    for (int64_t pr = 0; pr < pairs; ++pr) {
      if (first_pos + i0 + pr / grp < k0) continue;
      CombineChunk(k0 == 0, M[pr], L[pr], O + pr * hd, m[pr], l[pr], o + pr * hd, hd);
    }
  }
  for (int64_t pr = 0; pr < pairs; ++pr) {
    const int64_t i = pr / grp, h = pr % grp;
    NormalizeRow(O + pr * hd, L[pr], hd, out + ((i0 + i) * nh + kvh * grp + h) * hd);
  }
}

// Split calls, after every item: KV head `item`'s pairs folded over the chunks in order.
inline void AttentionCombineImpl(const ops::AttentionShape& s, int64_t n_q, int64_t n_keys,
                                 const float* partials, float* out, int64_t item) {
  const int64_t hd = s.head_dim, nh = s.n_heads, grp = s.n_heads / s.n_kv_heads;
  const int64_t chunks = AttnChunks(n_keys), pairs = n_q * grp, kvh = item;
  const int64_t first_pos = n_keys - n_q;
  for (int64_t pr = 0; pr < pairs; ++pr) {
    const int64_t i = pr / grp, h = pr % grp;
    float* dst = out + (i * nh + kvh * grp + h) * hd;  // the running O, then the result
    float M = 0.0f, L = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) {
      if (first_pos + i < c * ops::kAttnChunk) break;
      const float* slot = partials + ((kvh * chunks + c) * pairs + pr) * (hd + 2);
      CombineChunk(c == 0, M, L, dst, slot[0], slot[1], slot + 2, hd);
    }
    NormalizeRow(dst, L, hd, dst);
  }
}

}  // namespace qcoder::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
