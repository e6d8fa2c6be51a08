// Helpers for the quantized-kernel tests: owning storage for a QMatrix placed at an unaligned
// offset with padded row strides, an independent per-element decoder, and bitwise comparison.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "kernels/qmatrix.h"

namespace qcoder::test {

// Copies `rows` dense rows of `row_len` bytes into `buf`, starting `offset` bytes in, each row
// `row_len + pad` bytes after the previous one. Returns the pointer to row 0.
inline const uint8_t* place_rows(std::vector<uint8_t>& buf, const uint8_t* dense, int64_t rows,
                                 size_t row_len, size_t offset, size_t pad) {
  const size_t stride = row_len + pad;
  buf.assign(offset + static_cast<size_t>(rows) * stride + 8, 0xA5);  // poison padding
  for (int64_t r = 0; r < rows; ++r)
    if (row_len) std::memcpy(buf.data() + offset + r * stride, dense + r * row_len, row_len);
  return buf.data() + offset;
}

// A QMatrix that owns unaligned, padded copies of dense data/scales/biases.
struct OwnedQMatrix {
  std::vector<uint8_t> data_buf, scales_buf, biases_buf;
  QMatrix m;

  // dense_* hold rows back to back with no padding.
  OwnedQMatrix(QuantSpec spec, int64_t rows, int64_t cols, DType data_dtype,
               const std::vector<uint8_t>& dense_data, DType scales_dtype,
               const std::vector<uint8_t>& dense_scales, DType biases_dtype,
               const std::vector<uint8_t>& dense_biases, size_t offset = 1, size_t pad = 3) {
    m.spec = spec;
    m.rows = rows;
    m.cols = cols;
    m.dtype = data_dtype;
    const size_t row_len = m.packed_row_bytes();
    m.data = place_rows(data_buf, dense_data.data(), rows, row_len, offset, pad);
    m.row_bytes = row_len + pad;
    if (spec.quantized()) {
      const size_t srow = static_cast<size_t>(m.groups_per_row()) * dtype_size(scales_dtype);
      m.scales_dtype = scales_dtype;
      m.scales = place_rows(scales_buf, dense_scales.data(), rows, srow, offset + 2, pad + 1);
      m.scales_row_bytes = srow + pad + 1;
      if (quant_mode_has_biases(spec.mode)) {
        const size_t brow = static_cast<size_t>(m.groups_per_row()) * dtype_size(biases_dtype);
        m.biases_dtype = biases_dtype;
        m.biases = place_rows(biases_buf, dense_biases.data(), rows, brow, offset + 1, pad + 2);
        m.biases_row_bytes = brow + pad + 2;
      }
    }
  }
};

// ---- Independent decoding (written from the spec, sharing no code with the kernels) ----

// Bits [first, first + n) of a little-endian bit stream: stream bit t is bit t%8 of byte t/8.
inline uint32_t stream_bits(const uint8_t* row, int64_t first, int n) {
  uint32_t v = 0;
  for (int k = 0; k < n; ++k) {
    const int64_t t = first + k;
    const uint32_t bit = (row[t / 8] >> (t % 8)) & 1u;
    v |= bit << k;
  }
  return v;
}

// FP4 E2M1: sign bit 3, exponent bits 1-2 (bias 1), mantissa bit 0; exponent 0 is subnormal.
inline float indep_fp4(uint32_t code) {
  const bool neg = (code >> 3) & 1u;
  const int e = static_cast<int>((code >> 1) & 3u);
  const int mant = static_cast<int>(code & 1u);
  const float mag = e == 0 ? 0.5f * static_cast<float>(mant)
                           : std::ldexp(1.0f + 0.5f * static_cast<float>(mant), e - 1);
  return neg ? -mag : mag;
}

// FP8 E4M3 (fn): bias 7, no infinities, S.1111.111 is NaN.
inline float indep_e4m3(uint8_t b) {
  const bool neg = b & 0x80u;
  const int e = (b >> 3) & 15;
  const int mant = b & 7;
  float mag;
  if (e == 15 && mant == 7) return std::numeric_limits<float>::quiet_NaN();
  if (e == 0)
    mag = std::ldexp(static_cast<float>(mant) / 8.0f, -6);
  else
    mag = std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, e - 7);
  return neg ? -mag : mag;
}

// E8M0 as MLX decodes it: 2^(s-127), s = 0 -> 2^-127, s = 255 -> +inf (float bits 0x7f800000).
inline float indep_e8m0(uint8_t s) {
  if (s == 255) return std::numeric_limits<float>::infinity();
  return std::ldexp(1.0f, static_cast<int>(s) - 127);
}

inline float indep_load_float(DType t, const uint8_t* p, int64_t i) {
  if (t == DType::kF32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  if (t == DType::kBF16) {
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  return f16_to_f32(h);
}

// Element (row, c) of m decoded one element at a time from the raw bytes.
inline float indep_element(const QMatrix& m, int64_t row, int64_t c) {
  const uint8_t* w = m.data + row * m.row_bytes;
  if (!m.spec.quantized()) return indep_load_float(m.dtype, w, c);
  const int64_t g = c / m.spec.group_size;
  const uint8_t* s = m.scales + row * m.scales_row_bytes;
  const int bits = m.spec.bits;
  const uint32_t code = stream_bits(w, c * bits, bits);
  switch (m.spec.mode) {
    case QuantMode::kAffine: {
      const float scale = indep_load_float(m.scales_dtype, s, g);
      const float bias = indep_load_float(m.biases_dtype, m.biases + row * m.biases_row_bytes, g);
      const float sq = scale * static_cast<float>(code);
      return sq + bias;
    }
    case QuantMode::kMxfp4:
      return indep_fp4(code) * indep_e8m0(s[g]);
    case QuantMode::kMxfp8:
      return indep_e4m3(static_cast<uint8_t>(code)) * indep_e8m0(s[g]);
    case QuantMode::kNvfp4:
      return indep_fp4(code) * indep_e4m3(s[g]);
    case QuantMode::kNone:
      break;
  }
  return 0.0f;
}

// Bitwise equality, or both NaN (MLX's NaN payload need not match ours).
inline bool same_float(float a, float b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  return f32_to_bits(a) == f32_to_bits(b);
}

}  // namespace qcoder::test
