// Reference dequantization on hand-built bit patterns and on random packed data checked
// against an independent per-element decoder (quant_test_util.h).
#include "kernels/reference/quant_ref.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "quant_test_util.h"

namespace qcoder {
namespace {

using test::OwnedQMatrix;
using test::same_float;

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::vector<uint8_t> words_bytes(const std::vector<uint32_t>& w) {
  std::vector<uint8_t> out;
  for (uint32_t x : w)
    for (int k = 0; k < 4; ++k) out.push_back(static_cast<uint8_t>(x >> (8 * k)));
  return out;
}

// One-row affine matrix with scale 1, bias 0 (float32) so the output is q itself.
std::vector<float> affine_q(int bits, const std::vector<uint8_t>& row_bytes, int64_t cols) {
  const QuantSpec spec{QuantMode::kAffine, bits, 32};
  const auto groups = static_cast<size_t>(cols / 32);
  OwnedQMatrix q(spec, 1, cols, DType::kU32, row_bytes, DType::kF32,
                 f32_bytes(std::vector<float>(groups, 1.0f)), DType::kF32,
                 f32_bytes(std::vector<float>(groups, 0.0f)));
  std::vector<float> out(static_cast<size_t>(cols));
  ref::dequantize_row(q.m, 0, out.data());
  return out;
}

TEST(QuantRefPatterns, ThreeBitStraddlesBytes) {
  // 32 elements * 3 bits = 12 bytes. Element 2 = byte0 bits 6-7 (low) + byte1 bit 0 (high);
  // element 5 = byte1 bit 7 (low) + byte2 bits 0-1 (high).
  std::vector<uint8_t> row(12, 0);
  row[0] = 0x40;  // element 2 low bits = 0b01
  row[1] = 0x01;  // element 2 high bit = 1 -> element 2 = 5
  row[2] =
      0xEB;  // bits0-1 = 11 -> element 5 = 0b110 = 6; bits2-4 = 010 -> e6 = 2; bits5-7 -> e7 = 7
  row[11] = 0xE0;  // element 31 = bits 93..95 = byte 11 bits 5-7 = 7
  const auto out = affine_q(3, row, 32);
  const std::vector<float> want8 = {0, 0, 5, 0, 0, 6, 2, 7};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i], want8[i]) << i;
  for (int i = 8; i < 31; ++i) EXPECT_EQ(out[i], 0.0f) << i;
  EXPECT_EQ(out[31], 7.0f);
}

TEST(QuantRefPatterns, FiveAndSixBitStraddleWords) {
  // 5-bit element 6 = stream bits 30..34: word0 bits 30-31 and word1 bits 0-2.
  std::vector<uint32_t> w5(5, 0);
  w5[0] = 0x80000000u;  // element 6 bit 1
  w5[1] = 0x00000004u;  // stream bit 34 = element 6 bit 4
  auto out = affine_q(5, words_bytes(w5), 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], i == 6 ? 18.0f : 0.0f) << i;
  // 6-bit element 5 = stream bits 30..35.
  std::vector<uint32_t> w6(6, 0);
  w6[0] = 0x40000000u;  // element 5 bit 0
  w6[1] = 0x00000008u;  // stream bit 35 = element 5 bit 5
  out = affine_q(6, words_bytes(w6), 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], i == 5 ? 33.0f : 0.0f) << i;
}

TEST(QuantRefPatterns, PowerOfTwoWidthsUseWordLanes) {
  // 2-bit: 16 per word, element j = (word >> 2j) & 3.
  auto out = affine_q(2, words_bytes({0xC00000E4u, 0}), 32);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 1.0f);
  EXPECT_EQ(out[2], 2.0f);
  EXPECT_EQ(out[3], 3.0f);
  EXPECT_EQ(out[15], 3.0f);
  EXPECT_EQ(out[16], 0.0f);
  // 4-bit: 8 per word.
  out = affine_q(4, words_bytes({0x76543210u, 0xFEDCBA98u, 0, 0}), 32);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(out[i], static_cast<float>(i));
  // 8-bit: 4 per word.
  std::vector<uint32_t> w8(8, 0);
  w8[0] = 0x04030201u;
  w8[7] = 0xFF000000u;
  out = affine_q(8, words_bytes(w8), 32);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[3], 4.0f);
  EXPECT_EQ(out[31], 255.0f);
  // 1-bit: 32 per word.
  out = affine_q(1, words_bytes({0x80000001u}), 32);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_EQ(out[31], 1.0f);
}

TEST(QuantRefPatterns, AffineScaleBiasPerGroup) {
  // 4-bit g32, 64 cols: all codes 3 in group 0 and 10 in group 1, bf16 scale/bias.
  std::vector<uint32_t> words(8, 0x33333333u);
  for (int k = 4; k < 8; ++k) words[k] = 0xAAAAAAAAu;
  std::vector<uint8_t> scales, biases;
  for (float v : {-0.5f, 0.25f}) {
    const uint16_t h = f32_to_bf16(v);
    scales.push_back(static_cast<uint8_t>(h));
    scales.push_back(static_cast<uint8_t>(h >> 8));
  }
  for (float v : {3.0f, -1.0f}) {
    const uint16_t h = f32_to_bf16(v);
    biases.push_back(static_cast<uint8_t>(h));
    biases.push_back(static_cast<uint8_t>(h >> 8));
  }
  OwnedQMatrix q({QuantMode::kAffine, 4, 32}, 1, 64, DType::kU32, words_bytes(words), DType::kBF16,
                 scales, DType::kBF16, biases);
  std::vector<float> out(64);
  ref::dequantize_row(q.m, 0, out.data());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], 1.5f);   // -0.5*3 + 3
  for (int i = 32; i < 64; ++i) EXPECT_EQ(out[i], 1.5f);  // 0.25*10 - 1
}

TEST(QuantRefPatterns, Fp4CodesAndScales) {
  // 32 codes 0..15, 0..15; element j of a word at bits 4j (low nibble of byte first).
  const auto words = words_bytes({0x76543210u, 0xFEDCBA98u, 0x76543210u, 0xFEDCBA98u});
  const float table[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  // mxfp4: scale bytes per row: 127 (1), 129 (4), 0 (2^-127), 255 (+inf per MLX).
  std::vector<uint8_t> data;
  for (int r = 0; r < 4; ++r) data.insert(data.end(), words.begin(), words.end());
  OwnedQMatrix mx({QuantMode::kMxfp4, 4, 32}, 4, 32, DType::kU32, data, DType::kU8,
                  {127, 129, 0, 255}, DType::kU8, {});
  std::vector<float> out(32);
  const float scales[4] = {1.0f, 4.0f, std::ldexp(1.0f, -127),
                           std::numeric_limits<float>::infinity()};
  for (int r = 0; r < 4; ++r) {
    ref::dequantize_row(mx.m, r, out.data());
    for (int i = 0; i < 32; ++i) {
      const float want = table[i % 16] * scales[r];
      EXPECT_TRUE(same_float(out[i], want)) << "row " << r << " i " << i << ": " << out[i];
    }
  }
  ref::dequantize_row(mx.m, 0, out.data());
  EXPECT_TRUE(std::signbit(out[8]));  // code 8 is -0.0
  ref::dequantize_row(mx.m, 3, out.data());
  EXPECT_TRUE(std::isnan(out[0]));  // 0 * inf
  EXPECT_EQ(out[1], std::numeric_limits<float>::infinity());
  EXPECT_EQ(out[9], -std::numeric_limits<float>::infinity());

  // nvfp4: group 16, E4M3 scales 0x38 = 1.0 and 0xC4 = -3.0 (sign bit, e=8, m=4: 1.5*2).
  OwnedQMatrix nv({QuantMode::kNvfp4, 4, 16}, 1, 32, DType::kU32, words, DType::kU8, {0x38, 0xC4},
                  DType::kU8, {});
  ref::dequantize_row(nv.m, 0, out.data());
  for (int i = 0; i < 16; ++i) EXPECT_TRUE(same_float(out[i], table[i])) << i;
  for (int i = 16; i < 32; ++i) EXPECT_TRUE(same_float(out[i], table[i - 16] * -3.0f)) << i;
}

TEST(QuantRefPatterns, Fp8ElementsAndScales) {
  std::vector<uint8_t> bytes(32, 0);
  bytes[0] = 0x38;  // 1.0
  bytes[1] = 0xB8;  // -1.0
  bytes[2] = 0x7E;  // 448
  bytes[3] = 0x01;  // 2^-9 (smallest subnormal)
  bytes[4] = 0x7F;  // NaN
  bytes[5] = 0x08;  // 2^-6 (smallest normal)
  OwnedQMatrix m({QuantMode::kMxfp8, 8, 32}, 1, 32, DType::kU32, bytes, DType::kU8, {126},
                 DType::kU8, {});
  std::vector<float> out(32);
  ref::dequantize_row(m.m, 0, out.data());
  EXPECT_EQ(out[0], 0.5f);
  EXPECT_EQ(out[1], -0.5f);
  EXPECT_EQ(out[2], 224.0f);
  EXPECT_EQ(out[3], std::ldexp(1.0f, -10));
  EXPECT_TRUE(std::isnan(out[4]));
  EXPECT_EQ(out[5], std::ldexp(1.0f, -7));
  EXPECT_EQ(out[6], 0.0f);
}

TEST(QuantRefPatterns, UnquantizedRows) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  const int64_t rows = 3, cols = 10;
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    std::vector<uint8_t> dense;
    std::vector<float> want;
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float v = nd(rng);
      if (t == DType::kF32) {
        const uint32_t b = f32_to_bits(v);
        for (int k = 0; k < 4; ++k) dense.push_back(static_cast<uint8_t>(b >> (8 * k)));
        want.push_back(v);
      } else {
        const uint16_t h = t == DType::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
        dense.push_back(static_cast<uint8_t>(h));
        dense.push_back(static_cast<uint8_t>(h >> 8));
        want.push_back(t == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h));
      }
    }
    OwnedQMatrix m(QuantSpec{}, rows, cols, t, dense, t, {}, t, {});
    std::vector<float> out(cols);
    for (int64_t r = 0; r < rows; ++r) {
      ref::dequantize_row(m.m, r, out.data());
      for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(out[c], want[r * cols + c]);
    }
    std::vector<float> x(cols, 1.0f), y(rows, 0.0f);
    ref::matmul_rows(m.m, x.data(), 1, y.data(), 0, rows);
    for (int64_t r = 0; r < rows; ++r) {
      float acc = 0.0f;
      for (int64_t c = 0; c < cols; ++c) acc += want[r * cols + c];
      EXPECT_EQ(y[r], acc);
    }
  }
}

struct RandomCase {
  QuantSpec spec;
  DType scales_dtype;
};

std::vector<RandomCase> random_cases() {
  std::vector<RandomCase> out;
  for (int b : {1, 2, 3, 4, 5, 6, 8})
    for (int g : {32, 64, 128})
      for (DType t : {DType::kBF16, DType::kF16, DType::kF32})
        out.push_back({{QuantMode::kAffine, b, g}, t});
  out.push_back({default_quant_spec(QuantMode::kMxfp4), DType::kU8});
  out.push_back({default_quant_spec(QuantMode::kMxfp8), DType::kU8});
  out.push_back({default_quant_spec(QuantMode::kNvfp4), DType::kU8});
  return out;
}

std::vector<uint8_t> random_scales(std::mt19937& rng, DType t, size_t n) {
  std::vector<uint8_t> out;
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::kU8) {
      out.push_back(static_cast<uint8_t>(byte(rng)));
    } else if (t == DType::kF32) {
      const uint32_t b = f32_to_bits(nd(rng));
      for (int k = 0; k < 4; ++k) out.push_back(static_cast<uint8_t>(b >> (8 * k)));
    } else {
      const float v = nd(rng);
      const uint16_t h = t == DType::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
      out.push_back(static_cast<uint8_t>(h));
      out.push_back(static_cast<uint8_t>(h >> 8));
    }
  }
  return out;
}

TEST(QuantRefRandom, MatchesIndependentDecode) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  const int64_t rows = 3, cols = 256;
  for (const RandomCase& rc : random_cases()) {
    SCOPED_TRACE(rc.spec.to_string() + " scales " + std::string(dtype_name(rc.scales_dtype)));
    const auto words = packed_words_per_row(rc.spec, cols);
    std::vector<uint8_t> data(static_cast<size_t>(rows * words * 4));
    for (auto& b : data) b = static_cast<uint8_t>(byte(rng));
    const auto n_groups = static_cast<size_t>(rows * (cols / rc.spec.group_size));
    const auto scales = random_scales(rng, rc.scales_dtype, n_groups);
    const auto biases = quant_mode_has_biases(rc.spec.mode)
                            ? random_scales(rng, rc.scales_dtype, n_groups)
                            : std::vector<uint8_t>{};
    OwnedQMatrix q(rc.spec, rows, cols, DType::kU32, data, rc.scales_dtype, scales, rc.scales_dtype,
                   biases);
    ASSERT_NO_THROW(validate_qmatrix(q.m, "random"));
    std::vector<float> out(cols);
    int mismatches = 0;
    for (int64_t r = 0; r < rows; ++r) {
      ref::dequantize_row(q.m, r, out.data());
      for (int64_t c = 0; c < cols; ++c) {
        const float want = test::indep_element(q.m, r, c);
        if (!same_float(out[c], want) && ++mismatches < 5)
          ADD_FAILURE() << "row " << r << " col " << c << ": " << out[c] << " want " << want;
      }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

}  // namespace
}  // namespace qcoder
