// KV cache formats (kernels/kv_format.h): the scalar reference against MLX itself
// (tests/fixtures/quant/kv_quant_vectors.safetensors, written by
// tests/reference/make_kv_quant_vectors.py with mx.quantize, the quantization of mlx-lm's
// QuantizedKVCache) and the SIMD row decoder and encoder against the reference, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/kv_format.h"
#include "kernels/ops.h"
#include "kernels/reference/kv_ref.h"
#include "mini_safetensors.h"
#include "simd_test_util.h"

namespace qcoder {
namespace {

using test::MiniSafetensors;

std::vector<float> floats_of(const test::StTensor& t) {
  std::vector<float> v(t.nbytes / 4);
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

uint16_t u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// The level of element e in a stored row (the layout of kernels/kv_format.h).
uint32_t level_of(const KvFormat& f, const uint8_t* row, int64_t e) {
  if (f.dtype == KvDtype::kQ8) return row[e];
  const int64_t g = f.group, half = g / 2, gi = e / g, j = e % g;
  return (row[gi * half + j % half] >> (j >= half ? 4 : 0)) & 0x0fu;
}

TEST(KvFormat, ParsesBitsAndSizesRows) {
  EXPECT_EQ(kv_format_from_bits(16).dtype, KvDtype::kBF16);
  EXPECT_EQ(kv_format_from_bits(32).dtype, KvDtype::kF32);
  EXPECT_EQ(kv_format_from_bits(8).dtype, KvDtype::kQ8);
  EXPECT_EQ(kv_format_from_bits(4, 32).group, 32);
  EXPECT_THROW(kv_format_from_bits(6), Error);
  EXPECT_THROW(kv_format_from_bits(0), Error);
  EXPECT_THROW(kv_format_from_bits(8, 48), Error);
  EXPECT_THROW(validate_kv_format(kv_format_from_bits(8, 128), 64), Error);
  EXPECT_NO_THROW(validate_kv_format(kv_format_from_bits(8, 64), 128));
  // One 480B row (8 KV heads x 128): 4096, 2048, 1024 + 64, 512 + 64 bytes.
  EXPECT_EQ(kv_row_bytes(kv_format_from_bits(32), 1024), 4096);
  EXPECT_EQ(kv_row_bytes(kv_format_from_bits(16), 1024), 2048);
  EXPECT_EQ(kv_row_bytes(kv_format_from_bits(8), 1024), 1088);
  EXPECT_EQ(kv_row_bytes(kv_format_from_bits(4), 1024), 576);
}

TEST(KvFormat, QuantizationIsMlxBitForBit) {
  const MiniSafetensors st(std::string(QCODER_SOURCE_DIR) +
                           "/tests/fixtures/quant/kv_quant_vectors.safetensors");
  int checked = 0;
  for (int bits : {8, 4})
    for (int group : {32, 64, 128}) {
      const std::string name = "q" + std::to_string(bits) + "_g" + std::to_string(group);
      SCOPED_TRACE(name);
      const test::StTensor& xt = st.at(name + ".x");
      const int64_t rows = xt.shape[0], n = xt.shape[1], groups = n / group;
      const std::vector<float> x = floats_of(xt), sc = floats_of(st.at(name + ".scales")),
                               bi = floats_of(st.at(name + ".biases")),
                               deq = floats_of(st.at(name + ".deq"));
      const test::StTensor& qt = st.at(name + ".q");
      const KvFormat f = kv_format_from_bits(bits, group);
      std::vector<uint8_t> row(static_cast<size_t>(kv_row_bytes(f, n)));
      std::vector<float> back(static_cast<size_t>(n));
      for (int64_t r = 0; r < rows; ++r) {
        ref::kv_encode_row(f, &x[r * n], n, row.data());
        const uint8_t* scales = row.data() + n * bits / 8;
        const uint8_t* biases = scales + 2 * groups;
        for (int64_t g = 0; g < groups; ++g) {
          ASSERT_EQ(bf16_to_f32(u16_at(scales + 2 * g)), sc[r * groups + g]) << "row " << r << " group " << g;
          ASSERT_EQ(bf16_to_f32(u16_at(biases + 2 * g)), bi[r * groups + g]) << "row " << r << " group " << g;
        }
        for (int64_t e = 0; e < n; ++e)
          ASSERT_EQ(level_of(f, row.data(), e), qt.data[r * n + e]) << "row " << r << " element " << e;
        // Dequantized: qcoder computes scale * q + bias in float32 (as MLX's quantized matmul
        // does inside attention); mx.dequantize in bf16 rounds the product and the sum to bf16.
        ref::kv_decode(f, row.data(), n, 0, n, back.data());
        for (int64_t e = 0; e < n; ++e) {
          const float s = sc[r * groups + e / group], b = bi[r * groups + e / group];
          const float q = static_cast<float>(qt.data[r * n + e]);
          const float p = s * q;
          const float exact = p + b;
          ASSERT_EQ(back[e], exact) << "row " << r << " element " << e;
          const float pb = bf16_to_f32(f32_to_bf16(p));
          const float sum = pb + b;
          ASSERT_EQ(bf16_to_f32(f32_to_bf16(sum)), deq[r * n + e]) << "row " << r << " element " << e;
        }
        ++checked;
      }
    }
  EXPECT_EQ(checked, 48);
}

TEST(KvFormat, Bf16IsRoundToNearestEven) {
  const float x[4] = {1.0f, 1.00390625f, 1.01171875f, -3.1415926f};  // exact, tie down, tie up
  uint8_t row[8];
  ref::kv_encode_row(kv_format_from_bits(16), x, 4, row);
  float back[4];
  ref::kv_decode(kv_format_from_bits(16), row, 4, 0, 4, back);
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], 1.0f);
  EXPECT_EQ(back[2], 1.015625f);
  EXPECT_EQ(back[3], bf16_to_f32(f32_to_bf16(x[3])));
}

// The larger-magnitude end of a group is exact (when bf16 holds it); 0 is exact in float32
// scale terms and off by at most the bf16 rounding of the scale times the level (~edge/256).
TEST(KvFormat, QuantizedEdgeAndZeroAreExact) {
  for (int bits : {8, 4}) {
    const KvFormat f = kv_format_from_bits(bits, 32);
    std::vector<float> x(32);
    for (int i = 0; i < 32; ++i) x[i] = 0.1f * static_cast<float>(i % 7) - 0.25f;
    x[5] = -2.5f;  // the edge (bf16 exact)
    x[9] = 0.0f;
    std::vector<uint8_t> row(static_cast<size_t>(kv_row_bytes(f, 32)));
    ref::kv_encode_row(f, x.data(), 32, row.data());
    std::vector<float> back(32);
    ref::kv_decode(f, row.data(), 32, 0, 32, back.data());
    EXPECT_EQ(back[5], -2.5f) << bits;
    EXPECT_NEAR(back[9], 0.0f, 2.5f / 256) << bits;
  }
}

TEST(SimdKvDecode, EqualsReferenceBitwise) {
  test::for_each_target([&] {
    std::mt19937 rng(5);
    for (int bits : {32, 16, 8, 4})
      for (int group : {32, 64, 128})
        for (int64_t n : {int64_t{128}, int64_t{384}, int64_t{1024}}) {
          if (bits >= 16 && group != 64) continue;
          const KvFormat f = kv_format_from_bits(bits, group);
          test::Floats x(static_cast<size_t>(n), rng, 1.5f);
          std::vector<uint8_t> buf(static_cast<size_t>(kv_row_bytes(f, n)) + 3);
          uint8_t* row = buf.data() + 1;  // unaligned, as rows in a block may be
          ref::kv_encode_row(f, x.p, n, row);
          const int64_t step = f.quantized() ? group : 1;
          for (int64_t begin : {int64_t{0}, step, n - 2 * step})
            for (int64_t count : {step, 2 * step, n - begin}) {
              if (begin < 0 || begin + count > n) continue;
              std::vector<float> want(static_cast<size_t>(count)), got(want.size(), NAN);
              ref::kv_decode(f, row, n, begin, count, want.data());
              ops::kv_decode(f, row, n, begin, count, got.data());
              if (count == 0) continue;  // an empty range decodes nothing (memcmp needs non-null)
              ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * 4))
                  << kv_format_name(f) << " n " << n << " begin " << begin << " count " << count;
            }
        }
  });
}

// One group of awkward values for the encoder test, picked by `kind`.
void fill_awkward_group(int kind, float* x, int64_t g, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int64_t> at(0, g - 1);
  const float c = nd(rng) * 3.0f;
  for (int64_t i = 0; i < g; ++i) {
    const float r = nd(rng);
    switch (kind) {
      case 0: x[i] = 1.5f * r; break;                                  // plain random
      case 1: x[i] = c; break;                                         // all equal
      case 2: x[i] = 0.0f; break;                                      // zeros
      case 3: x[i] = -0.0f; break;                                     // negative zeros
      case 4: x[i] = (i & 1) ? -0.0f : 0.0f; break;                    // both zeros
      case 5: x[i] = r * 1e37f; break;                                 // huge: range overflows
      case 6: x[i] = 3e38f; break;                                     // huge, all equal
      case 7: x[i] = r * 1e-39f; break;                                // subnormal
      case 8: x[i] = r * 1e-30f; break;                                // tiny, under the 1e-7 floor
      case 9: x[i] = 1000.0f + 1e-4f * r; break;                       // narrow range far from 0
      case 10: x[i] = std::fabs(r); break;                             // one-signed
      case 11: x[i] = -std::fabs(r); break;
      case 12: x[i] = 0.5f * static_cast<float>(static_cast<int>(r * 8.0f)); break;  // ties
      case 13: x[i] = r; break;                                        // + one NaN below
      case 14: x[i] = r; break;                                        // + infinities below
      default: x[i] = r * 0.01f; break;                                // + one outlier below
    }
  }
  if (kind == 13) x[at(rng)] = std::numeric_limits<float>::quiet_NaN();
  if (kind == 14) {
    x[at(rng)] = std::numeric_limits<float>::infinity();
    x[at(rng)] = -std::numeric_limits<float>::infinity();
  }
  if (kind == 15) x[at(rng)] = 50.0f;
}

// The SIMD encoder (KvCache::store's) writes exactly the reference's bytes, on every target,
// for every format, group size and awkward group (including non-finite ones, where the
// reference's behaviour is what it happens to be: the encoder must still match it).
TEST(SimdKvEncode, EqualsReferenceBitwise) {
  test::for_each_target([&] {
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> kind_of(0, 15);
    for (int bits : {32, 16, 8, 4})
      for (int group : {32, 64, 128})
        for (int64_t n : {int64_t{32}, int64_t{128}, int64_t{192}, int64_t{512}, int64_t{1024},
                          int64_t{37}, int64_t{5}}) {
          if (bits >= 16 && group != 64) continue;
          if (bits < 16 && n % group != 0) continue;
          const KvFormat f = kv_format_from_bits(bits, group);
          const size_t nbytes = static_cast<size_t>(kv_row_bytes(f, n));
          for (int rep = 0; rep < 12; ++rep) {
            std::vector<float> xbuf(static_cast<size_t>(n) + 1);
            float* x = xbuf.data() + 1;  // unaligned input
            const int64_t g = f.quantized() ? group : n;
            for (int64_t g0 = 0; g0 < n; g0 += g)  // every kind once per row, then random
              fill_awkward_group(rep == 0 ? static_cast<int>((g0 / g) % 16) : kind_of(rng), x + g0,
                                 std::min(g, n - g0), rng);
            std::vector<uint8_t> want(nbytes + 2, 0xaa), got(nbytes + 2, 0x55);
            ref::kv_encode_row(f, x, n, want.data() + 1);
            ops::kv_encode_row(f, x, n, got.data() + 1);  // unaligned output
            ASSERT_EQ(0, std::memcmp(want.data() + 1, got.data() + 1, nbytes))
                << kv_format_name(f) << " n " << n << " rep " << rep;
            EXPECT_EQ(got[0], 0x55);  // nothing written outside the row
            EXPECT_EQ(got[nbytes + 1], 0x55);
          }
        }
  });
}

// Every awkward kind in every position of a q4/q8 row of several heads.
TEST(SimdKvEncode, EveryKindInEveryGroup) {
  test::for_each_target([&] {
    std::mt19937 rng(12);
    for (int bits : {8, 4})
      for (int group : {32, 64, 128}) {
        const KvFormat f = kv_format_from_bits(bits, group);
        const int64_t n = 4 * 128;
        const size_t nbytes = static_cast<size_t>(kv_row_bytes(f, n));
        for (int kind = 0; kind < 16; ++kind) {
          std::vector<float> x(static_cast<size_t>(n));
          for (int64_t g0 = 0; g0 < n; g0 += group)
            fill_awkward_group(g0 == 0 ? kind : (kind + g0 / group) % 16, x.data() + g0, group, rng);
          std::vector<uint8_t> want(nbytes), got(nbytes, 0x55);
          ref::kv_encode_row(f, x.data(), n, want.data());
          ops::kv_encode_row(f, x.data(), n, got.data());
          ASSERT_EQ(0, std::memcmp(want.data(), got.data(), nbytes))
              << kv_format_name(f) << " kind " << kind;
        }
      }
  });
}

}  // namespace
}  // namespace qcoder
