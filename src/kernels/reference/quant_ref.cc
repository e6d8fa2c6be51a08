// Scalar reference dequantization and matmul. Deliberately simple: one row at a time, one
// element at a time, no SIMD.
//
// Floating-point contract: every weight is computed as `p = scale * q; w = p + bias` (affine)
// or `w = elem * scale` (mx*/nv*) in float32, and every dot product as `p = w*x; acc += p` in
// increasing column order. The product and the sum are separate statements so that no
// compiler default fuses them into an fma (GCC in ISO mode, which this project uses via
// CMAKE_CXX_EXTENSIONS OFF, defaults to -ffp-contract=off; clang's default "on" only fuses
// within one expression). MLX's CPU dequantize is plain multiply-then-add too (checked
// bitwise against mx.dequantize with float32 scales and biases: an fma gives different bits
// for float32 scales), so dequantize_row reproduces it exactly. For mx*/nv* the products are
// exact in float32 (a 2- or 4-significant-bit element times a power of two or a 4-bit E4M3),
// except overflow to inf, which MLX shares.
#include "kernels/reference/quant_ref.h"

#include <cassert>
#include <vector>

namespace qcoder::ref {
namespace {

// Eight consecutive `bits`-bit elements of a little-endian bit stream always fill exactly
// `bits` bytes; returns those bytes as one little-endian integer (bits <= 8).
inline uint64_t load_pack(const uint8_t* p, int bits) {
  uint64_t v = 0;
  for (int k = 0; k < bits; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  return v;
}

void dequantize_affine(const QMatrix& m, const uint8_t* wrow, const uint8_t* srow,
                       const uint8_t* brow, float* out) {
  const int bits = m.spec.bits;
  const int group = m.spec.group_size;
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  const int64_t groups = m.cols / group;
  int64_t c = 0;
  for (int64_t g = 0; g < groups; ++g) {
    const float scale = load_float(m.scales_dtype, srow, static_cast<size_t>(g));
    const float bias = load_float(m.biases_dtype, brow, static_cast<size_t>(g));
    for (int k = 0; k < group; k += 8, c += 8) {
      const uint64_t v = load_pack(wrow + (c / 8) * bits, bits);
      for (int j = 0; j < 8; ++j) {
        const auto q = static_cast<float>((v >> (j * bits)) & mask);
        const float sq = scale * q;
        out[c + j] = sq + bias;
      }
    }
  }
}

void dequantize_fp(const QMatrix& m, const uint8_t* wrow, const uint8_t* srow, float* out) {
  const int group = m.spec.group_size;
  const int64_t groups = m.cols / group;
  int64_t c = 0;
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t sbyte = srow[g];
    const float scale =
        m.spec.mode == QuantMode::kNvfp4 ? fp8_e4m3_to_f32(sbyte) : mx_scale_to_f32(sbyte);
    if (m.spec.mode == QuantMode::kMxfp8) {
      for (int k = 0; k < group; ++k, ++c) out[c] = fp8_e4m3_to_f32(wrow[c]) * scale;
    } else {
      // FP4: 8 codes per little-endian uint32, element j at bits 4j.
      for (int k = 0; k < group; k += 8, c += 8) {
        const uint64_t v = load_pack(wrow + c / 2, 4);
        for (int j = 0; j < 8; ++j)
          out[c + j] = fp4_e2m1_to_f32(static_cast<uint8_t>((v >> (4 * j)) & 0xfu)) * scale;
      }
    }
  }
}

}  // namespace

void dequantize_row(const QMatrix& m, int64_t row, float* out) {
  assert(row >= 0 && row < m.rows);
  const uint8_t* wrow = m.data + static_cast<size_t>(row) * m.row_bytes;
  switch (m.spec.mode) {
    case QuantMode::kNone:
      for (int64_t c = 0; c < m.cols; ++c)
        out[c] = load_float(m.dtype, wrow, static_cast<size_t>(c));
      return;
    case QuantMode::kAffine:
      dequantize_affine(m, wrow, m.scales + static_cast<size_t>(row) * m.scales_row_bytes,
                        m.biases + static_cast<size_t>(row) * m.biases_row_bytes, out);
      return;
    case QuantMode::kMxfp4:
    case QuantMode::kMxfp8:
    case QuantMode::kNvfp4:
      dequantize_fp(m, wrow, m.scales + static_cast<size_t>(row) * m.scales_row_bytes, out);
      return;
  }
}

void matmul_rows(const QMatrix& m, const float* X, int64_t n_tokens, float* Y, int64_t row_begin,
                 int64_t row_end) {
  assert(row_begin >= 0 && row_begin <= row_end && row_end <= m.rows);
  std::vector<float> w(static_cast<size_t>(m.cols));
  for (int64_t r = row_begin; r < row_end; ++r) {
    dequantize_row(m, r, w.data());
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* x = X + t * m.cols;
      float acc = 0.0f;
      for (int64_t c = 0; c < m.cols; ++c) {
        const float p = w[static_cast<size_t>(c)] * x[c];
        acc += p;
      }
      Y[t * m.rows + r] = acc;
    }
  }
}

}  // namespace qcoder::ref
