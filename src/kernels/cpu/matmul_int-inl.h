// Matrix products, part 2: the integer path (affine any bits, mxfp4, nvfp4) and the dispatcher
// MatMulImpl. Compiled once per Highway target (foreach_target).
//
// Activations are int16 per weight group (PreparedActs); weight codes are widened to int16 and
// multiplied pairwise into int32 (vpmaddwd, or vpdpwssd with AVX512-VNNI), so each group's dot
// product isum[g] is an exact integer whatever the summation order. Rows are processed in
// panels of kPanel: the float epilogue runs with the panel's rows in SIMD lanes, per row
//   acc = fma(float(isum[g]), sw[g] * sx[g], acc),  accb = fma(bias[g], xsum[g], accb)
// over g in order, y = acc + accb. Two kernels produce the isums:
//   - matrix-vector (few tokens): one row at a time, each group's partial vector reduced by a
//     transpose-and-add tree across the panel's rows;
//   - matrix-matrix (AVX2 and up, >= kGemmMinTokens tokens): the panel's codes repacked as
//     [pair of columns][row] int16 pairs, one activation pair broadcast per step, rows in lanes.
// Both feed the same epilogue, so a row's bits do not depend on the number of tokens, on the
// kernel, or on how rows are split between threads.

#if defined(QCODER_KERNELS_CPU_MATMUL_INT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QCODER_KERNELS_CPU_MATMUL_INT_INL_H_
#undef QCODER_KERNELS_CPU_MATMUL_INT_INL_H_
#else
#define QCODER_KERNELS_CPU_MATMUL_INT_INL_H_
#endif

#include <algorithm>
#include <cstring>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/cpu/matmul-inl.h"

// BMI2 (pdep) comes with the AVX2 and AVX-512 targets.
#undef QCODER_HAVE_PDEP
#if HWY_TARGET != HWY_SCALAR && HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#include <immintrin.h>
#define QCODER_HAVE_PDEP 1
#else
#define QCODER_HAVE_PDEP 0
#endif

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0.3's AVX3_DL target string names AVX-VNNI (the VEX form, which Zen 4 lacks) but
// not AVX512-VNNI, which every CPU it accepts has (Ice Lake and later, Zen 4). Enable the
// latter; MulAcc uses only the 512-bit form, which has no VEX encoding (the 256/128-bit
// intrinsics would compile to VEX AVX-VNNI here and fault on Zen 4).
#if !HWY_COMPILER_CLANG
#pragma GCC target("avx512vnni")
#endif
#endif
// Clang has no `#pragma GCC target`: the functions that issue VNNI instructions carry it.
#undef QCODER_VNNI
#if HWY_TARGET == HWY_AVX3_DL && HWY_COMPILER_CLANG
#define QCODER_VNNI __attribute__((target(HWY_TARGET_STR ",avx512vnni")))
#else
#define QCODER_VNNI
#endif
namespace qcoder::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kPanel = 16;        // rows per panel (the epilogue's lanes)
constexpr int64_t kGemmMinTokens = 8;  // fewer tokens: matrix-vector kernel
constexpr int kNT = 4;                 // tokens per pass of the matrix-vector kernel
// Prefetch distance of the matrix-vector kernels, in bytes of codes: rows are short (1-3 KB)
// and each row's loop exit is a mispredicted branch that empties the out-of-order window, so
// without software prefetch a core keeps few misses in flight and stalls on every line.
constexpr int64_t kPrefetchBytes = 2048;
// The one-token decode kernel prefetches (into L2) this many bytes ahead of the rows it reads:
// 16 KB measured best on Zen 4 (4 KB: 48% of the read sweep, 8 KB: 65%, 16 KB: 70%,
// 32 KB: 67%; qcoder_micro_bench, one thread).
constexpr int64_t kPrefetchAhead = 16384;

// Software prefetch into L2 (prefetcht1 on x86). The matrix-vector kernels stream weights
// once; prefetching them into L1 (prefetcht0) ties up the few L1 miss buffers and was measured
// at 44% of the read sweep against 70% into L2 (qcoder_micro_bench, one thread, Zen 4).
HWY_INLINE void PrefetchL2(const void* p) { __builtin_prefetch(p, 0, 2); }

// acc += widened a16 * b16, pairwise into int32 (exact): vpdpwssd with AVX512-VNNI.
template <class D32, class V16, class V32>
QCODER_VNNI HWY_INLINE V32 MulAcc(D32 d32, V16 a, V16 b, V32 acc) {
#if HWY_TARGET == HWY_AVX3_DL
  if constexpr (sizeof(acc.raw) == 64) {
    return V32{_mm512_dpwssd_epi32(acc.raw, a.raw, b.raw)};
  } else {
    // 128/256-bit: the AVX3_DL target string also enables AVX-VNNI (VEX), which Zen 4 lacks;
    // the plain intrinsic, or a compiler fusing vpmaddwd + vpaddd (clang does), would emit
    // that encoding.
    // The accumulator in xmm16 (EVEX-only register) forces the EVEX encoding.
    if constexpr (sizeof(acc.raw) == 32) {
      register __m256i r asm("ymm16") = acc.raw;
      asm("vpdpwssd %2, %1, %0" : "+v"(r) : "v"(a.raw), "v"(b.raw));
      return V32{r};
    } else {
      register __m128i r asm("xmm16") = acc.raw;
      asm("vpdpwssd %2, %1, %0" : "+v"(r) : "v"(a.raw), "v"(b.raw));
      return V32{r};
    }
  }
#else
  V32 unused = hn::Zero(d32);
  return hn::ReorderWidenMulAccumulate(d32, a, b, acc, unused);
#endif
}

// ---------------------------------------------------------------------------------------
// Unpacking codes.

// One row of affine codes (any bits) to bytes: 8 elements per `bits` bytes.
inline void UnpackAffineRow(const uint8_t* w, int64_t cols, int bits, uint8_t* out) {
  const uint64_t mask = (uint64_t{1} << bits) - 1;
#if QCODER_HAVE_PDEP
  uint64_t dep = 0;
  for (int j = 0; j < 8; ++j) dep |= mask << (8 * j);
#endif
  for (int64_t c = 0; c < cols; c += 8, w += bits) {
    uint64_t v = 0;
    std::memcpy(&v, w, static_cast<size_t>(bits));  // little-endian host
#if QCODER_HAVE_PDEP
    const uint64_t spread = _pdep_u64(v, dep);
    std::memcpy(out + c, &spread, 8);
#else
    for (int j = 0; j < 8; ++j) out[c + j] = static_cast<uint8_t>((v >> (j * bits)) & mask);
#endif
  }
}

// One row of FP4 codes to int8 values 2 * e2m1 (exact integers in [-12, 12]).
inline void UnpackFp4Row(const uint8_t* w, int64_t cols, int8_t* out) {
  static constexpr int8_t kTwice[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  for (int64_t c = 0; c < cols; c += 2, ++w) {
    out[c] = kTwice[*w & 0xf];
    out[c + 1] = kTwice[*w >> 4];
  }
}

// One row's codes as int16 in the activation layout (for the matrix-matrix repack).
template <class D16>
void UnpackRowLayout(const QMatrix& m, const IntLayout& lay, const uint8_t* wrow, int16_t* out,
                     uint8_t* bytes) {
  const D16 d16;
  const hn::Rebind<uint8_t, D16> du8;
  const hn::Rebind<uint16_t, D16> du16;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d16)), cols = m.cols;
  if (lay.kind == IntKind::kAffine4) {
    const auto mask = hn::Set(du16, uint16_t{0x0f});
    for (int64_t c = 0; c < cols; c += 2 * L, wrow += L) {
      const auto b = hn::PromoteTo(du16, hn::LoadU(du8, wrow));
      hn::StoreU(hn::BitCast(d16, hn::And(b, mask)), d16, out + c);
      hn::StoreU(hn::BitCast(d16, hn::ShiftRight<4>(b)), d16, out + c + L);
    }
    return;
  }
  if (lay.kind == IntKind::kAffine8) {
    for (int64_t c = 0; c < cols; c += L)
      hn::StoreU(hn::BitCast(d16, hn::PromoteTo(du16, hn::LoadU(du8, wrow + c))), d16, out + c);
    return;
  }
  if (m.spec.mode == QuantMode::kAffine) {
    UnpackAffineRow(wrow, cols, m.spec.bits, bytes);
    for (int64_t c = 0; c < cols; c += L)
      hn::StoreU(hn::BitCast(d16, hn::PromoteTo(du16, hn::LoadU(du8, bytes + c))), d16, out + c);
  } else {
    const hn::Rebind<int8_t, D16> di8;
    UnpackFp4Row(wrow, cols, reinterpret_cast<int8_t*>(bytes));
    for (int64_t c = 0; c < cols; c += L)
      hn::StoreU(hn::PromoteTo(d16, hn::LoadU(di8, reinterpret_cast<const int8_t*>(bytes) + c)), d16, out + c);
  }
}

// ---------------------------------------------------------------------------------------
// Matrix-vector kernel: per-group partial vectors of one row for NT tokens, stored to
// vb[((k * G + g) * kPanel + j) * L32] (j = the row's place in its panel).

template <class D16, int NT>
QCODER_VNNI HWY_NOINLINE void RowPartials(const QMatrix& m, const IntLayout& lay, const uint8_t* wrow,
                              const uint8_t* bytes, const int16_t* const* x, int64_t j, int32_t* vb) {
  const D16 d16;
  const hn::RepartitionToWide<D16> d32;
  const hn::Rebind<uint8_t, D16> du8;
  const hn::Rebind<uint16_t, D16> du16;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d16)), L32 = static_cast<int64_t>(hn::Lanes(d32));
  const int group = m.spec.group_size;
  const int64_t G = m.cols / group;
  const auto mask = hn::Set(du16, uint16_t{0x0f});
  for (int64_t g = 0; g < G; ++g) {
    decltype(hn::Zero(d32)) a[NT];
    for (int k = 0; k < NT; ++k) a[k] = hn::Zero(d32);
    const int64_t base = g * group;
    if (lay.kind == IntKind::kAffine4) {
      const uint8_t* p = wrow + base / 2;
      hwy::Prefetch(p + kPrefetchBytes);
      for (int64_t c = 0; c < group; c += 2 * L, p += L) {
        const auto b = hn::PromoteTo(du16, hn::LoadU(du8, p));
        const auto lo = hn::BitCast(d16, hn::And(b, mask));
        const auto hi = hn::BitCast(d16, hn::ShiftRight<4>(b));
        for (int k = 0; k < NT; ++k) {
          a[k] = MulAcc(d32, lo, hn::LoadU(d16, x[k] + base + c), a[k]);
          a[k] = MulAcc(d32, hi, hn::LoadU(d16, x[k] + base + c + L), a[k]);
        }
      }
    } else if (lay.kind == IntKind::kAffine8) {
      hwy::Prefetch(wrow + base + kPrefetchBytes);
      hwy::Prefetch(wrow + base + kPrefetchBytes + 63);
      for (int64_t c = 0; c < group; c += L) {
        const auto w = hn::BitCast(d16, hn::PromoteTo(du16, hn::LoadU(du8, wrow + base + c)));
        for (int k = 0; k < NT; ++k) a[k] = MulAcc(d32, w, hn::LoadU(d16, x[k] + base + c), a[k]);
      }
    } else if (m.spec.mode == QuantMode::kAffine) {
      for (int64_t c = 0; c < group; c += L) {
        const auto w = hn::BitCast(d16, hn::PromoteTo(du16, hn::LoadU(du8, bytes + base + c)));
        for (int k = 0; k < NT; ++k) a[k] = MulAcc(d32, w, hn::LoadU(d16, x[k] + base + c), a[k]);
      }
    } else {
      const hn::Rebind<int8_t, D16> di8;
      const int8_t* sb = reinterpret_cast<const int8_t*>(bytes);
      for (int64_t c = 0; c < group; c += L) {
        const auto w = hn::PromoteTo(d16, hn::LoadU(di8, sb + base + c));
        for (int k = 0; k < NT; ++k) a[k] = MulAcc(d32, w, hn::LoadU(d16, x[k] + base + c), a[k]);
      }
    }
    for (int k = 0; k < NT; ++k) hn::Store(a[k], d32, vb + ((k * G + g) * kPanel + j) * L32);
  }
}

// isum[g * kPanel + j] for every group from the kPanel partial vectors of each group.
template <class D32>
HWY_NOINLINE void ReducePanel(const int32_t* vb, int64_t G, int32_t* isum) {
  const D32 d32;
  const int64_t L32 = static_cast<int64_t>(hn::Lanes(d32));
  for (int64_t g = 0; g < G; ++g) {
    const int32_t* v = vb + g * kPanel * L32;
    for (int64_t j = 0; j < kPanel; j += 4)
      Reduce4(d32, hn::Load(d32, v + j * L32), hn::Load(d32, v + (j + 1) * L32),
              hn::Load(d32, v + (j + 2) * L32), hn::Load(d32, v + (j + 3) * L32), isum + g * kPanel + j);
  }
}

// Prefetches the scales and biases of rows [p, p + n) (the matrix-vector kernels read them a
// panel at a time, a stream apart from the codes). Issued a few rows at a time: a burst of a
// whole panel's lines overflows the miss queues and loses prefetches.
inline void PrefetchScales(const QMatrix& m, int64_t p, int64_t n) {
  if (p >= m.rows) return;
  n = std::min(n, m.rows - p);
  const uint8_t* s = m.scales + static_cast<size_t>(p) * m.scales_row_bytes;
  const size_t sb = static_cast<size_t>(n) * m.scales_row_bytes;
  for (size_t o = 0; o < sb; o += 64) PrefetchL2(s + o);
  if (m.biases) {
    const uint8_t* b = m.biases + static_cast<size_t>(p) * m.biases_row_bytes;
    const size_t bb = static_cast<size_t>(n) * m.biases_row_bytes;
    for (size_t o = 0; o < bb; o += 64) PrefetchL2(b + o);
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// 4-bit decode on raw nibbles: each 64-byte block (128 codes: one group of 128 or two of 64)
// is split into low/high nibbles (even/odd elements) and multiplied with the activation byte
// planes by vpdpbusd (u8 x s8), high plane shifted by 8: lane i ends up with the exact sum of
// its 8 codes times xi. Stores vb[((k * NB + b) * kPanel + j) * 16].
template <int NT>
QCODER_VNNI HWY_NOINLINE void RowPartialsPlanes(const uint8_t* wrow, int64_t NB, const int8_t* const* xp,
                                    int64_t j, int32_t* vb) {
  const __m512i mask = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < NB; ++b) {
    hwy::Prefetch(wrow + b * 64 + kPrefetchBytes);
    const __m512i w = _mm512_loadu_si512(wrow + b * 64);
    const __m512i lo = _mm512_and_si512(w, mask);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), mask);
    for (int k = 0; k < NT; ++k) {
      const int8_t* x = xp[k] + b * 256;
      __m512i ah = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(x));
      ah = _mm512_dpbusd_epi32(ah, hi, _mm512_loadu_si512(x + 64));
      __m512i al = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(x + 128));
      al = _mm512_dpbusd_epi32(al, hi, _mm512_loadu_si512(x + 192));
      _mm512_store_si512(vb + ((k * NB + b) * kPanel + j) * 16, _mm512_add_epi32(_mm512_slli_epi32(ah, 8), al));
    }
  }
}

// bf16 scales (or biases) of groups g0..g0+ng-1 (ng <= 4) of four rows, as out[k] = the four
// rows' values of group g0 + k in float32 lanes 0..3 (bf16 -> f32 is exact: a 16-bit shift).
QCODER_VNNI HWY_INLINE void LoadBf16Groups4(const uint8_t* const* rows, int64_t g0, int64_t ng, __m128* out) {
  if (ng == 4) {
    const __m128i a0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[0] + 2 * g0));
    const __m128i a1 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[1] + 2 * g0));
    const __m128i a2 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[2] + 2 * g0));
    const __m128i a3 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[3] + 2 * g0));
    const __m128i t0 = _mm_unpacklo_epi16(a0, a1), t1 = _mm_unpacklo_epi16(a2, a3);
    const __m128i u0 = _mm_unpacklo_epi32(t0, t1), u1 = _mm_unpackhi_epi32(t0, t1);
    const __m128i z = _mm_setzero_si128();
    out[0] = _mm_castsi128_ps(_mm_unpacklo_epi16(z, u0));
    out[1] = _mm_castsi128_ps(_mm_unpackhi_epi16(z, u0));
    out[2] = _mm_castsi128_ps(_mm_unpacklo_epi16(z, u1));
    out[3] = _mm_castsi128_ps(_mm_unpackhi_epi16(z, u1));
    return;
  }
  for (int64_t k = 0; k < ng; ++k) {
    const int64_t o = 2 * (g0 + k);
    out[k] = _mm_setr_ps(bf16_to_f32(load_u16(rows[0] + o)), bf16_to_f32(load_u16(rows[1] + o)),
                         bf16_to_f32(load_u16(rows[2] + o)), bf16_to_f32(load_u16(rows[3] + o)));
  }
}

// The four rows' partial vectors of block b (64 code bytes per row), reduced: i[0] = the four
// rows' sums of lanes 0-7 (group 2b with G64) or of all lanes (G128); i[1] = lanes 8-15 (G64).
template <int G64>
QCODER_VNNI HWY_INLINE void Block4(const uint8_t* w0, const uint8_t* w1, const uint8_t* w2,
                                   const uint8_t* w3, const int8_t* x, const uint8_t* pf, __m128i* i) {
  PrefetchL2(pf);
  PrefetchL2(pf + 64);
  PrefetchL2(pf + 128);
  PrefetchL2(pf + 192);
  const __m512i mask = _mm512_set1_epi8(0x0f);
  const __m512i xhe = _mm512_loadu_si512(x), xho = _mm512_loadu_si512(x + 64);
  const __m512i xle = _mm512_loadu_si512(x + 128), xlo = _mm512_loadu_si512(x + 192);
  const auto row = [&](const uint8_t* wp) QCODER_VNNI {
    const __m512i w = _mm512_loadu_si512(wp);
    const __m512i lo = _mm512_and_si512(w, mask);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), mask);
    // (high-plane sum << 8) as the accumulator of the low plane's: the same exact integer as
    // adding the two sums, one instruction fewer.
    const __m512i ah = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xhe), hi, xho);
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_slli_epi32(ah, 8), lo, xle), hi, xlo);
  };
  const __m512i v0 = row(w0), v1 = row(w1), v2 = row(w2), v3 = row(w3);
  const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
  const __m512i c2 = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
  // Per 128-bit block: the four rows' sums of that block's 4 lanes.
  const __m512i c = _mm512_add_epi32(_mm512_unpacklo_epi64(a, c2), _mm512_unpackhi_epi64(a, c2));
  const __m256i lo = _mm512_castsi512_si256(c), hi = _mm512_extracti64x4_epi64(c, 1);
  if constexpr (G64) {
    i[0] = _mm_add_epi32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1));
    i[1] = _mm_add_epi32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1));
  } else {
    const __m256i h = _mm256_add_epi32(lo, hi);
    i[0] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  }
}

// One group of the epilogue for four rows in lanes (PanelEpilogue's per-lane sequence).
HWY_INLINE void Epilogue4(__m128i isum, __m128 sw, __m128 bias, float sx, float xsum, __m128& acc,
                          __m128& accb) {
  const __m128 scale = _mm_mul_ps(sw, _mm_set1_ps(sx));
  acc = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), scale, acc);
  accb = _mm_fmadd_ps(bias, _mm_set1_ps(xsum), accb);
}

// One token, four rows at a time, epilogue fused in (the decode case; bf16 scales and biases):
// rows w0..w3 are read together (four independent weight streams per step, one loop exit per
// four rows, software prefetch into L2 kPrefetchAhead bytes ahead: a matrix's rows are
// consecutive in memory), each block's four partial vectors are reduced in registers to the
// four rows' group sums (the same exact integers as RowPartialsPlanes + ReducePanelPlanes),
// and the scales are transposed to [group][row] four groups at a time from the rows
// themselves. Each lane runs PanelEpilogue's exact sequence (scale = sw * sx;
// acc = fma(float(isum), scale, acc); accb = fma(bias, xsum, accb); y = acc + accb, over the
// groups in order), so the result is bitwise the same as every other path's.
// out4[i] = y of row i.
template <int G64>
QCODER_VNNI HWY_NOINLINE void Rows4PlanesFused(const uint8_t* const* wr, const uint8_t* const* sr,
                                               const uint8_t* const* br, int64_t G, const int8_t* x,
                                               const float* sx, const float* xsum, const uint8_t* pf,
                                               float* out4) {
  const uint8_t *w0 = wr[0], *w1 = wr[1], *w2 = wr[2], *w3 = wr[3];
  __m128 acc = _mm_setzero_ps(), accb = _mm_setzero_ps();
  constexpr int64_t kGB = G64 ? 2 : 1;  // groups per 64-byte block
  int64_t g0 = 0;
  for (; g0 + 4 <= G; g0 += 4) {  // four groups: 2 blocks (G64) or 4 (G128)
    __m128 s[4], b[4];
    LoadBf16Groups4(sr, g0, 4, s);
    LoadBf16Groups4(br, g0, 4, b);
    for (int k = 0; k < 4; k += static_cast<int>(kGB)) {
      const int64_t blk = (g0 + k) / kGB, o = blk * 64;
      __m128i i[2];
      Block4<G64>(w0 + o, w1 + o, w2 + o, w3 + o, x + blk * 256, pf + blk * 256, i);
      Epilogue4(i[0], s[k], b[k], sx[g0 + k], xsum[g0 + k], acc, accb);
      if constexpr (G64) Epilogue4(i[1], s[k + 1], b[k + 1], sx[g0 + k + 1], xsum[g0 + k + 1], acc, accb);
    }
  }
  for (; g0 < G; g0 += kGB) {  // the last 1-3 groups
    __m128 s[2], b[2];
    LoadBf16Groups4(sr, g0, kGB, s);
    LoadBf16Groups4(br, g0, kGB, b);
    const int64_t blk = g0 / kGB, o = blk * 64;
    __m128i i[2];
    Block4<G64>(w0 + o, w1 + o, w2 + o, w3 + o, x + blk * 256, pf + blk * 256, i);
    Epilogue4(i[0], s[0], b[0], sx[g0], xsum[g0], acc, accb);
    if constexpr (G64) Epilogue4(i[1], s[1], b[1], sx[g0 + 1], xsum[g0 + 1], acc, accb);
  }
  _mm_storeu_ps(out4, _mm_add_ps(acc, accb));
}

// One token, bf16 scales and biases, rows [r0, r1): Rows4PlanesFused over groups of four rows
// (a last group of fewer rows reads its last row again and stores only its own rows).
inline void MatVecPlanesFused(const QMatrix& m, const ops::PreparedActs& acts, int64_t src, float* y,
                              int64_t r0, int64_t r1) {
  const int64_t G = acts.groups;
  const int8_t* x = &acts.planes[src * m.cols * 2];
  const float* sx = &acts.sx[src * G];
  const float* xsum = &acts.xsum[src * G];
  PrefetchScales(m, r0, 4 * kPanel);
  for (int64_t r = r0; r < r1; r += 4) {
    const uint8_t *wr[4], *sr[4], *br[4];
    for (int64_t i = 0; i < 4; ++i) {
      const auto row = static_cast<size_t>(std::min(r + i, r1 - 1));
      wr[i] = m.data + row * m.row_bytes;
      sr[i] = m.scales + row * m.scales_row_bytes;
      br[i] = m.biases + row * m.biases_row_bytes;
    }
    if (((r - r0) & (kPanel - 1)) == 0 && r + 4 * kPanel < r1) PrefetchScales(m, r + 4 * kPanel, kPanel);
    const uint8_t* pf = wr[0] + kPrefetchAhead;
    float out4[4];
    if (m.spec.group_size == 64) Rows4PlanesFused<1>(wr, sr, br, G, x, sx, xsum, pf, out4);
    else Rows4PlanesFused<0>(wr, sr, br, G, x, sx, xsum, pf, out4);
    std::memcpy(y + r, out4, sizeof(float) * static_cast<size_t>(std::min<int64_t>(4, r1 - r)));
  }
}

// The four rows' partial vectors of block b for NT tokens (Block4 with the weights loaded and
// split into nibbles once for all the tokens): i[t][0], i[t][1] as Block4's i[0], i[1] for
// token t.
template <int G64, int NT>
QCODER_VNNI HWY_INLINE void Block4Tokens(const uint8_t* w0, const uint8_t* w1, const uint8_t* w2,
                                         const uint8_t* w3, const int8_t* const* x, int64_t xo,
                                         const uint8_t* pf, __m128i (*i)[2]) {
  PrefetchL2(pf);
  PrefetchL2(pf + 64);
  PrefetchL2(pf + 128);
  PrefetchL2(pf + 192);
  const __m512i mask = _mm512_set1_epi8(0x0f);
  __m512i lo[4], hi[4];
  const uint8_t* w[4] = {w0, w1, w2, w3};
  for (int r = 0; r < 4; ++r) {
    const __m512i v = _mm512_loadu_si512(w[r]);
    lo[r] = _mm512_and_si512(v, mask);
    hi[r] = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
  }
  for (int t = 0; t < NT; ++t) {
    const int8_t* xt = x[t] + xo;
    const __m512i xhe = _mm512_loadu_si512(xt), xho = _mm512_loadu_si512(xt + 64);
    const __m512i xle = _mm512_loadu_si512(xt + 128), xlo = _mm512_loadu_si512(xt + 192);
    __m512i v[4];
    for (int r = 0; r < 4; ++r) {
      const __m512i ah = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[r], xhe), hi[r], xho);
      v[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_slli_epi32(ah, 8), lo[r], xle), hi[r], xlo);
    }
    const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0], v[1]), _mm512_unpackhi_epi32(v[0], v[1]));
    const __m512i c2 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2], v[3]), _mm512_unpackhi_epi32(v[2], v[3]));
    const __m512i c = _mm512_add_epi32(_mm512_unpacklo_epi64(a, c2), _mm512_unpackhi_epi64(a, c2));
    const __m256i l256 = _mm512_castsi512_si256(c), h256 = _mm512_extracti64x4_epi64(c, 1);
    if constexpr (G64) {
      i[t][0] = _mm_add_epi32(_mm256_castsi256_si128(l256), _mm256_extracti128_si256(l256, 1));
      i[t][1] = _mm_add_epi32(_mm256_castsi256_si128(h256), _mm256_extracti128_si256(h256, 1));
    } else {
      const __m256i h = _mm256_add_epi32(l256, h256);
      i[t][0] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    }
  }
}

// NT tokens (2..7: a routed expert's rows when several sequences decode together), four rows at
// a time, epilogue fused in: Rows4PlanesFused with every weight block loaded once for all the
// tokens. The integer group sums are exact and each token's lanes run PanelEpilogue's
// sequence over the groups in order, so token t's outputs are bitwise those of the one-token
// kernel on that token alone. out[t * 4 + i] = y of token t, row i.
template <int G64, int NT>
QCODER_VNNI HWY_NOINLINE void Rows4PlanesFusedTokens(const uint8_t* const* wr, const uint8_t* const* sr,
                                                     const uint8_t* const* br, int64_t G,
                                                     const int8_t* const* x, const float* const* sx,
                                                     const float* const* xsum, const uint8_t* pf,
                                                     float* out) {
  const uint8_t *w0 = wr[0], *w1 = wr[1], *w2 = wr[2], *w3 = wr[3];
  __m128 acc[NT], accb[NT];
  for (int t = 0; t < NT; ++t) acc[t] = accb[t] = _mm_setzero_ps();
  constexpr int64_t kGB = G64 ? 2 : 1;  // groups per 64-byte block
  const auto block = [&](int64_t g, const __m128* s, const __m128* b) QCODER_VNNI {
    const int64_t blk = g / kGB, o = blk * 64;
    __m128i i[NT][2];
    Block4Tokens<G64, NT>(w0 + o, w1 + o, w2 + o, w3 + o, x, blk * 256, pf + blk * 256, i);
    for (int t = 0; t < NT; ++t) {
      Epilogue4(i[t][0], s[0], b[0], sx[t][g], xsum[t][g], acc[t], accb[t]);
      if constexpr (G64) Epilogue4(i[t][1], s[1], b[1], sx[t][g + 1], xsum[t][g + 1], acc[t], accb[t]);
    }
  };
  int64_t g0 = 0;
  for (; g0 + 4 <= G; g0 += 4) {
    __m128 s[4], b[4];
    LoadBf16Groups4(sr, g0, 4, s);
    LoadBf16Groups4(br, g0, 4, b);
    for (int k = 0; k < 4; k += static_cast<int>(kGB)) block(g0 + k, s + k, b + k);
  }
  for (; g0 < G; g0 += kGB) {
    __m128 s[2], b[2];
    LoadBf16Groups4(sr, g0, kGB, s);
    LoadBf16Groups4(br, g0, kGB, b);
    block(g0, s, b);
  }
  for (int t = 0; t < NT; ++t) _mm_storeu_ps(out + 4 * t, _mm_add_ps(acc[t], accb[t]));
}

// NT tokens (rows of acts: tokens[t], or t), bf16 scales and biases, rows [r0, r1):
// Rows4PlanesFusedTokens over groups of four rows, as MatVecPlanesFused.
template <int NT>
void MatVecPlanesFusedTokens(const QMatrix& m, const ops::PreparedActs& acts, const int32_t* tokens,
                             int64_t t0, float* Y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t G = acts.groups;
  const int8_t* x[NT];
  const float *sx[NT], *xsum[NT];
  for (int t = 0; t < NT; ++t) {
    const int64_t src = tokens ? tokens[t0 + t] : t0 + t;
    x[t] = &acts.planes[src * m.cols * 2];
    sx[t] = &acts.sx[src * G];
    xsum[t] = &acts.xsum[src * G];
  }
  PrefetchScales(m, r0, 4 * kPanel);
  for (int64_t r = r0; r < r1; r += 4) {
    const uint8_t *wr[4], *sr[4], *br[4];
    for (int64_t i = 0; i < 4; ++i) {
      const auto row = static_cast<size_t>(std::min(r + i, r1 - 1));
      wr[i] = m.data + row * m.row_bytes;
      sr[i] = m.scales + row * m.scales_row_bytes;
      br[i] = m.biases + row * m.biases_row_bytes;
    }
    if (((r - r0) & (kPanel - 1)) == 0 && r + 4 * kPanel < r1) PrefetchScales(m, r + 4 * kPanel, kPanel);
    const uint8_t* pf = wr[0] + kPrefetchAhead;
    float out[NT * 4];
    if (m.spec.group_size == 64) Rows4PlanesFusedTokens<1, NT>(wr, sr, br, G, x, sx, xsum, pf, out);
    else Rows4PlanesFusedTokens<0, NT>(wr, sr, br, G, x, sx, xsum, pf, out);
    const size_t nr = static_cast<size_t>(std::min<int64_t>(4, r1 - r));
    for (int t = 0; t < NT; ++t) std::memcpy(Y + (t0 + t) * ldy + r, out + 4 * t, sizeof(float) * nr);
  }
}

// isum[g * kPanel + j] from the block partials: a block is one group (group 128, all 16
// lanes) or two (group 64: lanes 0-7 and 8-15).
inline void ReducePanelPlanes(const int32_t* vb, int64_t NB, int group, int32_t* isum) {
  const hn::ScalableTag<int32_t> d32;
  const hn::Half<decltype(d32)> dh;
  const hn::Half<decltype(dh)> dq;
  const hn::Repartition<uint64_t, decltype(d32)> d64;
  for (int64_t b = 0; b < NB; ++b) {
    const int32_t* v = vb + b * kPanel * 16;
    for (int64_t j = 0; j < kPanel; j += 4) {
      const auto v0 = hn::Load(d32, v + j * 16), v1 = hn::Load(d32, v + (j + 1) * 16);
      const auto v2 = hn::Load(d32, v + (j + 2) * 16), v3 = hn::Load(d32, v + (j + 3) * 16);
      if (group == 128) {
        Reduce4(d32, v0, v1, v2, v3, isum + b * kPanel + j);
        continue;
      }
      const auto a = hn::Add(hn::InterleaveLower(d32, v0, v1), hn::InterleaveUpper(d32, v0, v1));
      const auto c2 = hn::Add(hn::InterleaveLower(d32, v2, v3), hn::InterleaveUpper(d32, v2, v3));
      const auto a64 = hn::BitCast(d64, a), b64 = hn::BitCast(d64, c2);
      const auto c = hn::Add(hn::BitCast(d32, hn::InterleaveLower(d64, a64, b64)),
                             hn::BitCast(d32, hn::InterleaveUpper(d64, a64, b64)));
      const auto lo = hn::LowerHalf(dh, c), hi = hn::UpperHalf(dh, c);  // groups 2b, 2b + 1
      hn::StoreU(hn::Add(hn::LowerHalf(dq, lo), hn::UpperHalf(dq, lo)), dq, isum + (2 * b) * kPanel + j);
      hn::StoreU(hn::Add(hn::LowerHalf(dq, hi), hn::UpperHalf(dq, hi)), dq, isum + (2 * b + 1) * kPanel + j);
    }
  }
}
#endif  // HWY_TARGET == HWY_AVX3_DL

// The panel epilogue for one token: out[j] for the kPanel rows (see the file comment).
inline void PanelEpilogue(const int32_t* isum, const float* swT, const float* bT, const float* sx,
                          const float* xsum, int64_t G, bool affine, float* out) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t c = 0; c < kPanel; c += L) {
    auto acc = hn::Zero(df), accb = hn::Zero(df);
    for (int64_t g = 0; g < G; ++g) {
      const auto scale = hn::Mul(hn::LoadU(df, swT + g * kPanel + c), hn::Set(df, sx[g]));
      acc = hn::MulAdd(hn::ConvertTo(df, hn::LoadU(di, isum + g * kPanel + c)), scale, acc);
      if (affine) accb = hn::MulAdd(hn::LoadU(df, bT + g * kPanel + c), hn::Set(df, xsum[g]), accb);
    }
    hn::StoreU(hn::Add(acc, accb), df, out + c);
  }
}

// ---------------------------------------------------------------------------------------
// Matrix-matrix kernel: rows in lanes. Wp[p * kPanel + j] holds the code pair p (layout
// positions 2p, 2p+1) of row j; one activation pair is broadcast per step.

#if HWY_TARGET <= HWY_AVX2
template <int TB>
QCODER_VNNI HWY_NOINLINE void GemmPanel(const uint32_t* Wp, const ops::PreparedActs& acts, const int32_t* tokens,
                            int64_t t0, const float* swT, const float* bT, bool affine, float* out) {
  const hn::ScalableTag<int32_t> d32;
  const hn::Repartition<int16_t, decltype(d32)> d16;
  const hn::ScalableTag<float> df;
  constexpr int64_t NV = kPanel / static_cast<int64_t>(HWY_MAX_BYTES / 4) > 0
                             ? kPanel / static_cast<int64_t>(HWY_MAX_BYTES / 4) : 1;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d32));
  const int64_t G = acts.groups, group = acts.group_size, cols = acts.cols;
  const int32_t* xr[TB];
  int64_t src[TB];
  for (int t = 0; t < TB; ++t) {
    src[t] = tokens ? tokens[t0 + t] : t0 + t;
    xr[t] = reinterpret_cast<const int32_t*>(&acts.xi[src[t] * cols]);
  }
  decltype(hn::Zero(df)) facc[TB][NV], bacc[TB][NV];
  for (int t = 0; t < TB; ++t)
    for (int64_t v = 0; v < NV; ++v) facc[t][v] = bacc[t][v] = hn::Zero(df);
  for (int64_t g = 0; g < G; ++g) {
    decltype(hn::Zero(d32)) ia[TB][NV];
    for (int t = 0; t < TB; ++t)
      for (int64_t v = 0; v < NV; ++v) ia[t][v] = hn::Zero(d32);
    const int64_t p0 = g * group / 2, p1 = p0 + group / 2;
#if HWY_TARGET == HWY_AVX3_DL
    if constexpr (NV == 1) {  // the hot loop, spelled out: one weight load, TB vpdpwssd
      __m512i acc[TB];
      for (int t = 0; t < TB; ++t) acc[t] = _mm512_setzero_si512();
      for (int64_t p = p0; p < p1; ++p) {
        const __m512i wv = _mm512_load_si512(Wp + p * kPanel);
        for (int t = 0; t < TB; ++t) {
          int32_t pair;
          std::memcpy(&pair, xr[t] + p, 4);
          acc[t] = _mm512_dpwssd_epi32(acc[t], wv, _mm512_set1_epi32(pair));
        }
      }
      for (int t = 0; t < TB; ++t) ia[t][0].raw = acc[t];
    } else
#endif
    for (int64_t p = p0; p < p1; ++p) {
      decltype(hn::Zero(d16)) w[NV];
      for (int64_t v = 0; v < NV; ++v)
        w[v] = hn::BitCast(d16, hn::Load(d32, reinterpret_cast<const int32_t*>(Wp + p * kPanel + v * L)));
      for (int t = 0; t < TB; ++t) {
        int32_t pair;
        std::memcpy(&pair, xr[t] + p, 4);
        const auto xb = hn::BitCast(d16, hn::Set(d32, pair));
        for (int64_t v = 0; v < NV; ++v) ia[t][v] = MulAcc(d32, w[v], xb, ia[t][v]);
      }
    }
    for (int t = 0; t < TB; ++t) {
      const auto sx = hn::Set(df, acts.sx[src[t] * G + g]);
      const auto xs = hn::Set(df, acts.xsum[src[t] * G + g]);
      for (int64_t v = 0; v < NV; ++v) {
        const auto scale = hn::Mul(hn::LoadU(df, swT + g * kPanel + v * L), sx);
        facc[t][v] = hn::MulAdd(hn::ConvertTo(df, ia[t][v]), scale, facc[t][v]);
        if (affine) bacc[t][v] = hn::MulAdd(hn::LoadU(df, bT + g * kPanel + v * L), xs, bacc[t][v]);
      }
    }
  }
  for (int t = 0; t < TB; ++t)
    for (int64_t v = 0; v < NV; ++v) hn::StoreU(hn::Add(facc[t][v], bacc[t][v]), df, out + t * kPanel + v * L);
}
#endif  // HWY_TARGET <= HWY_AVX2

// dst[p * kPanel + j] = src[j * stride + p] for j < kPanel, p < n: a transpose of 32-bit
// values (int16 code pairs, or floats), 16x16 blocks in registers with AVX-512.
inline void Transpose16(const uint32_t* src, int64_t stride, int64_t n, uint32_t* dst) {
  const int64_t pairs = n;
  uint32_t* W = dst;
  int64_t p = 0;
#if HWY_TARGET <= HWY_AVX3
  static_assert(kPanel == 16, "the AVX-512 transpose handles 16 rows");
  for (; p + 16 <= pairs; p += 16) {
    __m512i r[16], t[16];
    for (int j = 0; j < 16; ++j) r[j] = _mm512_loadu_si512(src + j * stride + p);
    for (int j = 0; j < 16; j += 2) {
      t[j] = _mm512_unpacklo_epi32(r[j], r[j + 1]);
      t[j + 1] = _mm512_unpackhi_epi32(r[j], r[j + 1]);
    }
    for (int j = 0; j < 16; j += 4) {
      r[j] = _mm512_unpacklo_epi64(t[j], t[j + 2]);
      r[j + 1] = _mm512_unpackhi_epi64(t[j], t[j + 2]);
      r[j + 2] = _mm512_unpacklo_epi64(t[j + 1], t[j + 3]);
      r[j + 3] = _mm512_unpackhi_epi64(t[j + 1], t[j + 3]);
    }
    // r[4a + b] now holds, in 128-bit block k, column 4k + b' of rows 4a..4a+3 (b' the
    // column order lo/hi interleave gives: b = 0,1,2,3 -> 0,1,2,3).
    for (int j = 0; j < 4; ++j) {
      t[j] = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88);       // blocks 0,2 of a, 0,2 of b
      t[4 + j] = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xdd);   // blocks 1,3
      t[8 + j] = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88);
      t[12 + j] = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xdd);
    }
    for (int j = 0; j < 4; ++j) {
      r[j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0x88);       // column j
      r[8 + j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0xdd);   // column 8 + j
      r[4 + j] = _mm512_shuffle_i32x4(t[4 + j], t[12 + j], 0x88);   // column 4 + j
      r[12 + j] = _mm512_shuffle_i32x4(t[4 + j], t[12 + j], 0xdd);  // column 12 + j
    }
    for (int j = 0; j < 16; ++j) _mm512_storeu_si512(W + (p + j) * kPanel, r[j]);
  }
#endif
  for (; p < pairs; ++p)
    for (int64_t j = 0; j < kPanel; ++j) std::memcpy(&W[p * kPanel + j], &src[j * stride + p], 4);
}

// ---------------------------------------------------------------------------------------

template <class D16>
void MatMulIntT(const QMatrix& m, const IntLayout& lay, const ops::PreparedActs& acts,
                const int32_t* tokens, int64_t n, float* Y, int64_t ldy, int64_t r0, int64_t r1) {
  const hn::RepartitionToWide<D16> d32;
  const int64_t G = acts.groups, cols = m.cols, L32 = static_cast<int64_t>(hn::Lanes(d32));
  const bool affine = m.spec.mode == QuantMode::kAffine;
  thread_local std::vector<float> sw, bias, swT, bT, outb;
  thread_local std::vector<int32_t> isum;
  thread_local std::vector<uint8_t> bytes;
  thread_local hwy::AlignedFreeUniquePtr<int32_t[]> vb;
  thread_local size_t vb_size = 0;
  thread_local std::vector<int16_t> rowbuf;
  thread_local hwy::AlignedFreeUniquePtr<uint32_t[]> wp;
  thread_local size_t wp_size = 0;
  sw.resize(static_cast<size_t>(G * kPanel));
  bias.resize(static_cast<size_t>(G * kPanel));
  swT.resize(static_cast<size_t>(G * kPanel));
  bT.assign(static_cast<size_t>(G * kPanel), 0.0f);
  isum.resize(static_cast<size_t>(G * kPanel));
  outb.resize(static_cast<size_t>(kPanel * 16));
  bytes.resize(static_cast<size_t>(cols));
#if HWY_TARGET <= HWY_AVX2
  const bool gemm = n >= kGemmMinTokens;
#else
  const bool gemm = false;
#endif
  if (gemm) {
    rowbuf.resize(static_cast<size_t>(kPanel * cols));
    const size_t need = static_cast<size_t>(cols / 2 * kPanel);
    if (wp_size < need) {
      wp = hwy::AllocateAligned<uint32_t>(need);
      wp_size = need;
    }
  } else {
    const size_t need = static_cast<size_t>(kNT * G * kPanel * L32);
    if (vb_size < need) {
      vb = hwy::AllocateAligned<int32_t>(need);
      vb_size = need;
    }
  }
#if HWY_TARGET == HWY_AVX3_DL
  if (n == 1 && !acts.planes.empty() && affine && m.scales_dtype == DType::kBF16 &&
      m.biases_dtype == DType::kBF16) {
    MatVecPlanesFused(m, acts, tokens ? tokens[0] : 0, Y, r0, r1);
    return;
  }
  // 2-7 tokens (a routed expert's rows in a decode batch): the same kernel with every weight
  // block read once for all the tokens (bitwise each token's one-token result).
  if (n > 1 && n < kGemmMinTokens && !acts.planes.empty() && affine && m.scales_dtype == DType::kBF16 &&
      m.biases_dtype == DType::kBF16) {
    switch (n) {
      case 2: MatVecPlanesFusedTokens<2>(m, acts, tokens, 0, Y, ldy, r0, r1); break;
      case 3: MatVecPlanesFusedTokens<3>(m, acts, tokens, 0, Y, ldy, r0, r1); break;
      case 4: MatVecPlanesFusedTokens<4>(m, acts, tokens, 0, Y, ldy, r0, r1); break;
      case 5: MatVecPlanesFusedTokens<5>(m, acts, tokens, 0, Y, ldy, r0, r1); break;
      case 6: MatVecPlanesFusedTokens<6>(m, acts, tokens, 0, Y, ldy, r0, r1); break;
      default: MatVecPlanesFusedTokens<7>(m, acts, tokens, 0, Y, ldy, r0, r1); break;
    }
    return;
  }
#endif
  if (!gemm) PrefetchScales(m, r0, 4 * kPanel);
  for (int64_t p0 = r0; p0 < r1; p0 += kPanel) {
    const int64_t pr = std::min(kPanel, r1 - p0);
    // Scales and biases of the panel, transposed to [group][row] (padding rows zero).
    for (int64_t j = 0; j < pr; ++j) DecodeRowScales(m, p0 + j, &sw[j * G], &bias[j * G]);
    if (pr < kPanel) {
      std::fill(sw.begin() + pr * G, sw.end(), 0.0f);
      std::fill(bias.begin() + pr * G, bias.end(), 0.0f);
    }
    Transpose16(reinterpret_cast<const uint32_t*>(sw.data()), G, G, reinterpret_cast<uint32_t*>(swT.data()));
    if (affine) Transpose16(reinterpret_cast<const uint32_t*>(bias.data()), G, G, reinterpret_cast<uint32_t*>(bT.data()));
#if HWY_TARGET <= HWY_AVX2
    if (gemm) {
      // Repack: the panel's codes in the activation layout, then as [pair][row] int16 pairs.
      if (pr < kPanel) std::fill(rowbuf.begin() + pr * cols, rowbuf.end(), int16_t{0});
      for (int64_t j = 0; j < pr; ++j)
        UnpackRowLayout<D16>(m, lay, m.data + static_cast<size_t>(p0 + j) * m.row_bytes,
                             &rowbuf[j * cols], bytes.data());
      uint32_t* W = wp.get();
      Transpose16(reinterpret_cast<const uint32_t*>(rowbuf.data()), cols / 2, cols / 2, W);
      int64_t t = 0;
      constexpr int kTB = HWY_TARGET <= HWY_AVX3 ? 8 : 4;
      for (; t + kTB <= n; t += kTB) {
        GemmPanel<kTB>(W, acts, tokens, t, swT.data(), bT.data(), affine, outb.data());
        for (int k = 0; k < kTB; ++k) std::memcpy(Y + (t + k) * ldy + p0, &outb[k * kPanel], sizeof(float) * pr);
      }
      for (int tb : {4, 2, 1}) {
        for (; t + tb <= n; t += tb) {
          if (tb == 4) GemmPanel<4>(W, acts, tokens, t, swT.data(), bT.data(), affine, outb.data());
          else if (tb == 2) GemmPanel<2>(W, acts, tokens, t, swT.data(), bT.data(), affine, outb.data());
          else GemmPanel<1>(W, acts, tokens, t, swT.data(), bT.data(), affine, outb.data());
          for (int k = 0; k < tb; ++k) std::memcpy(Y + (t + k) * ldy + p0, &outb[k * kPanel], sizeof(float) * pr);
        }
      }
      continue;
    }
#endif
    for (int64_t t0 = 0; t0 < n; t0 += kNT) {
      const int nt = static_cast<int>(std::min<int64_t>(kNT, n - t0));
      const int16_t* x[kNT];
      int64_t src[kNT];
      for (int k = 0; k < kNT; ++k) {
        src[k] = tokens ? tokens[t0 + std::min(k, nt - 1)] : t0 + std::min(k, nt - 1);
        x[k] = &acts.xi[src[k] * cols];
      }
#if HWY_TARGET == HWY_AVX3_DL
      if (!acts.planes.empty()) {
        const int64_t NB = cols / 128;
        const int8_t* xp[kNT];
        for (int k = 0; k < kNT; ++k) xp[k] = &acts.planes[src[k] * cols * 2];
        for (int64_t j = 0; j < kPanel; ++j) {
          if (j >= pr) {
            for (int k = 0; k < nt; ++k)
              for (int64_t b = 0; b < NB; ++b) std::fill_n(vb.get() + ((k * NB + b) * kPanel + j) * 16, 16, 0);
            continue;
          }
          const uint8_t* wrow = m.data + static_cast<size_t>(p0 + j) * m.row_bytes;
          switch (nt) {
            case 1: RowPartialsPlanes<1>(wrow, NB, xp, j, vb.get()); break;
            case 2: RowPartialsPlanes<2>(wrow, NB, xp, j, vb.get()); break;
            case 3: RowPartialsPlanes<3>(wrow, NB, xp, j, vb.get()); break;
            default: RowPartialsPlanes<4>(wrow, NB, xp, j, vb.get()); break;
          }
        }
        for (int k = 0; k < nt; ++k) {
          ReducePanelPlanes(vb.get() + k * NB * kPanel * 16, NB, m.spec.group_size, isum.data());
          PanelEpilogue(isum.data(), swT.data(), bT.data(), &acts.sx[src[k] * G], &acts.xsum[src[k] * G], G,
                        affine, outb.data());
          std::memcpy(Y + (t0 + k) * ldy + p0, outb.data(), sizeof(float) * pr);
        }
        continue;
      }
#endif
      for (int64_t j = 0; j < kPanel; ++j) {
        if (j >= pr) {  // padding rows: zero partials
          for (int k = 0; k < nt; ++k)
            for (int64_t g = 0; g < G; ++g)
              std::fill_n(vb.get() + ((k * G + g) * kPanel + j) * L32, L32, 0);
          continue;
        }
        const uint8_t* wrow = m.data + static_cast<size_t>(p0 + j) * m.row_bytes;
        if (lay.kind == IntKind::kGeneric) {
          if (affine) UnpackAffineRow(wrow, cols, m.spec.bits, bytes.data());
          else UnpackFp4Row(wrow, cols, reinterpret_cast<int8_t*>(bytes.data()));
        }
        switch (nt) {
          case 1: RowPartials<D16, 1>(m, lay, wrow, bytes.data(), x, j, vb.get()); break;
          case 2: RowPartials<D16, 2>(m, lay, wrow, bytes.data(), x, j, vb.get()); break;
          case 3: RowPartials<D16, 3>(m, lay, wrow, bytes.data(), x, j, vb.get()); break;
          default: RowPartials<D16, 4>(m, lay, wrow, bytes.data(), x, j, vb.get()); break;
        }
      }
      for (int k = 0; k < nt; ++k) {
        ReducePanel<decltype(d32)>(vb.get() + k * G * kPanel * L32, G, isum.data());
        PanelEpilogue(isum.data(), swT.data(), bT.data(), &acts.sx[src[k] * G], &acts.xsum[src[k] * G], G,
                      affine, outb.data());
        std::memcpy(Y + (t0 + k) * ldy + p0, outb.data(), sizeof(float) * pr);
      }
    }
  }
}

inline void MatMulInt(const QMatrix& m, const ops::PreparedActs& acts, const int32_t* tokens,
                      int64_t n, float* Y, int64_t ldy, int64_t r0, int64_t r1) {
  const IntLayout lay = LayoutFor(m.spec);
  if (lay.cap == 8) MatMulIntT<hn::CappedTag<int16_t, 8>>(m, lay, acts, tokens, n, Y, ldy, r0, r1);
  else if (lay.cap == 16) MatMulIntT<hn::CappedTag<int16_t, 16>>(m, lay, acts, tokens, n, Y, ldy, r0, r1);
  else MatMulIntT<hn::CappedTag<int16_t, 32>>(m, lay, acts, tokens, n, Y, ldy, r0, r1);
}

inline void MatMulImpl(const QMatrix& m, const ops::PreparedActs& acts, const int32_t* tokens,
                       int64_t n, float* Y, int64_t ldy, int64_t r0, int64_t r1) {
  if (n <= 0 || r0 >= r1) return;
  if (acts.integer) MatMulInt(m, acts, tokens, n, Y, ldy, r0, r1);
  else MatMulFloat(m, acts, tokens, n, Y, ldy, r0, r1);
}

}  // namespace qcoder::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
