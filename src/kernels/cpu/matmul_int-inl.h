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
// kernel, or on how rows are split between threads. On AVX512-VNNI two fragments replace them
// where they apply: matvec_vnni.inc (4-bit, 1-7 tokens, on raw nibbles) and gemm_vnni.inc
// (affine codes of any width as bytes, >= kGemmMinTokens tokens); same integers, same epilogue.
// With 8-bit activations (--fast, QMatrix::act_bits) every path computes the same integers from
// one int8 plane instead of two.

#if defined(QCODER_KERNELS_CPU_MATMUL_INT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QCODER_KERNELS_CPU_MATMUL_INT_INL_H_
#undef QCODER_KERNELS_CPU_MATMUL_INT_INL_H_
#else
#define QCODER_KERNELS_CPU_MATMUL_INT_INL_H_
#endif

#include <algorithm>
#include <cstring>
#include <type_traits>
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

#include "kernels/cpu/matvec_vnni.inc"

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

// Every token of a matrix-matrix panel: panel(std::integral_constant<int, TB>(), t) fills out
// with tokens [t, t + TB) (kPanel floats each), in blocks of kMaxTB, then 4, 2, 1; the rows
// [p0, p0 + pr) of each go to Y.
template <int kMaxTB, class Panel>
void GemmTokenBlocks(int64_t n, const float* out, float* Y, int64_t ldy, int64_t p0, int64_t pr, const Panel& panel) {
  int64_t t = 0;
  const auto run = [&](auto tb) {
    constexpr int TB = decltype(tb)::value;
    for (; t + TB <= n; t += TB) {
      panel(tb, t);
      for (int k = 0; k < TB; ++k) std::memcpy(Y + (t + k) * ldy + p0, &out[k * kPanel], sizeof(float) * pr);
    }
  };
  run(std::integral_constant<int, kMaxTB>());
  if constexpr (kMaxTB > 4) run(std::integral_constant<int, 4>());
  run(std::integral_constant<int, 2>());
  run(std::integral_constant<int, 1>());
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

#include "kernels/cpu/gemm_vnni.inc"

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
                const int32_t* tokens, int64_t n, float* Y, int64_t ldy, int64_t r0, int64_t r1,
                const uint8_t* next_rows) {
  const hn::RepartitionToWide<D16> d32;
  const int64_t G = acts.groups, cols = m.cols, L32 = static_cast<int64_t>(hn::Lanes(d32));
  const bool affine = m.spec.mode == QuantMode::kAffine;
  thread_local std::vector<float> sw, bias, swT, bT, outb;
  thread_local std::vector<int32_t> isum;
  thread_local std::vector<uint8_t> bytes;
  thread_local hwy::AlignedFreeUniquePtr<int32_t[]> vb;
  thread_local size_t vb_size = 0;
  thread_local std::vector<int16_t> rowbuf;
  thread_local std::vector<uint8_t> rowbuf8;
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
  // 1-7 tokens (decode; a routed expert's rows in a decode batch): the fused kernels, every
  // weight block read once for all the tokens (bitwise each token's one-token result).
  if (n < kGemmMinTokens && !acts.planes.empty() && affine && m.scales_dtype == DType::kBF16 &&
      m.biases_dtype == DType::kBF16) {
    const PrefetchPath pf{m.data + static_cast<size_t>(r0) * m.row_bytes,
                          static_cast<int64_t>(r1 - r0) * static_cast<int64_t>(m.row_bytes), next_rows};
    if (acts.act_bits == 8) MatVecPlanesFusedAny<1>(m, acts, tokens, n, Y, ldy, r0, r1, pf);
    else MatVecPlanesFusedAny<2>(m, acts, tokens, n, Y, ldy, r0, r1, pf);
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
#if HWY_TARGET == HWY_AVX3_DL
    if (gemm && !acts.x8.empty()) {
      // Affine codes: the panel's codes as bytes in the activation layout, then as [quad][row]
      // groups of four bytes.
      rowbuf8.resize(static_cast<size_t>(kPanel * cols));
      if (pr < kPanel) std::fill(rowbuf8.begin() + pr * cols, rowbuf8.end(), uint8_t{0});
      for (int64_t j = 0; j < pr; ++j)
        UnpackRowU8(m, lay, m.data + static_cast<size_t>(p0 + j) * m.row_bytes, &rowbuf8[j * cols]);
      uint32_t* W = wp.get();
      Transpose16(reinterpret_cast<const uint32_t*>(rowbuf8.data()), cols / 4, cols / 4, W);
      GemmTokenBlocks<8>(n, outb.data(), Y, ldy, p0, pr, [&](auto tb, int64_t t) {
        if (acts.act_bits == 8) GemmPanelU8<decltype(tb)::value, 1>(W, acts, tokens, t, swT.data(), bT.data(), outb.data());
        else GemmPanelU8<decltype(tb)::value, 2>(W, acts, tokens, t, swT.data(), bT.data(), outb.data());
      });
      continue;
    }
#endif
#if HWY_TARGET <= HWY_AVX2
    if (gemm) {
      // Repack: the panel's codes in the activation layout, then as [pair][row] int16 pairs.
      if (pr < kPanel) std::fill(rowbuf.begin() + pr * cols, rowbuf.end(), int16_t{0});
      for (int64_t j = 0; j < pr; ++j)
        UnpackRowLayout<D16>(m, lay, m.data + static_cast<size_t>(p0 + j) * m.row_bytes,
                             &rowbuf[j * cols], bytes.data());
      uint32_t* W = wp.get();
      Transpose16(reinterpret_cast<const uint32_t*>(rowbuf.data()), cols / 2, cols / 2, W);
      GemmTokenBlocks<HWY_TARGET <= HWY_AVX3 ? 8 : 4>(n, outb.data(), Y, ldy, p0, pr, [&](auto tb, int64_t t) {
        GemmPanel<decltype(tb)::value>(W, acts, tokens, t, swT.data(), bT.data(), affine, outb.data());
      });
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
        const int64_t NB = cols / 128, P = acts.act_bits == 8 ? 1 : 2;
        const int8_t* xp[kNT];
        for (int k = 0; k < kNT; ++k) xp[k] = &acts.planes[src[k] * cols * P];
        for (int64_t j = 0; j < kPanel; ++j) {
          if (j >= pr) {
            for (int k = 0; k < nt; ++k)
              for (int64_t b = 0; b < NB; ++b) std::fill_n(vb.get() + ((k * NB + b) * kPanel + j) * 16, 16, 0);
            continue;
          }
          const uint8_t* wrow = m.data + static_cast<size_t>(p0 + j) * m.row_bytes;
          if (P == 1) {
            switch (nt) {
              case 1: RowPartialsPlanes<1, 1>(wrow, NB, xp, j, vb.get()); break;
              case 2: RowPartialsPlanes<2, 1>(wrow, NB, xp, j, vb.get()); break;
              case 3: RowPartialsPlanes<3, 1>(wrow, NB, xp, j, vb.get()); break;
              default: RowPartialsPlanes<4, 1>(wrow, NB, xp, j, vb.get()); break;
            }
            continue;
          }
          switch (nt) {
            case 1: RowPartialsPlanes<1, 2>(wrow, NB, xp, j, vb.get()); break;
            case 2: RowPartialsPlanes<2, 2>(wrow, NB, xp, j, vb.get()); break;
            case 3: RowPartialsPlanes<3, 2>(wrow, NB, xp, j, vb.get()); break;
            default: RowPartialsPlanes<4, 2>(wrow, NB, xp, j, vb.get()); break;
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
                      int64_t n, float* Y, int64_t ldy, int64_t r0, int64_t r1, const uint8_t* next_rows) {
  const IntLayout lay = LayoutFor(m.spec);
  if (lay.cap == 8) MatMulIntT<hn::CappedTag<int16_t, 8>>(m, lay, acts, tokens, n, Y, ldy, r0, r1, next_rows);
  else if (lay.cap == 16) MatMulIntT<hn::CappedTag<int16_t, 16>>(m, lay, acts, tokens, n, Y, ldy, r0, r1, next_rows);
  else MatMulIntT<hn::CappedTag<int16_t, 32>>(m, lay, acts, tokens, n, Y, ldy, r0, r1, next_rows);
}

inline void MatMulImpl(const QMatrix& m, const ops::PreparedActs& acts, const int32_t* tokens,
                       int64_t n, float* Y, int64_t ldy, int64_t r0, int64_t r1, const uint8_t* next_rows) {
  if (n <= 0 || r0 >= r1) return;
  if (acts.integer) MatMulInt(m, acts, tokens, n, Y, ldy, r0, r1, next_rows);
  else MatMulFloat(m, acts, tokens, n, Y, ldy, r0, r1);
}

}  // namespace qcoder::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
