// QuantSpec parsing/validation, packed sizes and QMatrix::storage_bytes / validate_qmatrix.
#include "kernels/quant_format.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/qmatrix.h"

namespace qcoder {
namespace {

TEST(QuantFormat, ModeNamesRoundTrip) {
  for (QuantMode m :
       {QuantMode::kAffine, QuantMode::kMxfp4, QuantMode::kMxfp8, QuantMode::kNvfp4}) {
    auto parsed = parse_quant_mode(quant_mode_name(m));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_EQ(quant_mode_name(QuantMode::kNone), "none");
  EXPECT_FALSE(parse_quant_mode("none").has_value());
  EXPECT_FALSE(parse_quant_mode("Affine").has_value());
  EXPECT_FALSE(parse_quant_mode("").has_value());
  EXPECT_FALSE(parse_quant_mode("mxfp6").has_value());
}

TEST(QuantFormat, DefaultsAndToString) {
  EXPECT_EQ(default_quant_spec(QuantMode::kAffine), (QuantSpec{QuantMode::kAffine, 4, 64}));
  EXPECT_EQ(default_quant_spec(QuantMode::kMxfp4), (QuantSpec{QuantMode::kMxfp4, 4, 32}));
  EXPECT_EQ(default_quant_spec(QuantMode::kMxfp8), (QuantSpec{QuantMode::kMxfp8, 8, 32}));
  EXPECT_EQ(default_quant_spec(QuantMode::kNvfp4), (QuantSpec{QuantMode::kNvfp4, 4, 16}));
  EXPECT_FALSE(default_quant_spec(QuantMode::kNone).quantized());
  EXPECT_EQ(default_quant_spec(QuantMode::kAffine).to_string(), "affine 4-bit g64");
  EXPECT_EQ((QuantSpec{QuantMode::kAffine, 3, 32}).to_string(), "affine 3-bit g32");
  EXPECT_EQ(default_quant_spec(QuantMode::kMxfp4).to_string(), "mxfp4");
  EXPECT_EQ(default_quant_spec(QuantMode::kNvfp4).to_string(), "nvfp4");
  EXPECT_EQ(QuantSpec{}.to_string(), "none");
  EXPECT_EQ((QuantSpec{QuantMode::kMxfp4, 4, 64}).to_string(), "mxfp4 4-bit g64");
}

// The accepted set, checked against mx.quantize in MLX 0.32.4 for modes x bits 1..8 x groups
// 16..256: affine accepts bits {1,2,3,4,5,6,8} (1 included) x groups {32,64,128}.
TEST(QuantFormat, ValidateAcceptsExactlyMlxCombos) {
  const std::vector<int> bits_list = {-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16};
  const std::vector<int> groups = {-32, 0, 1, 8, 16, 32, 48, 64, 96, 128, 256};
  int accepted = 0;
  for (QuantMode m :
       {QuantMode::kAffine, QuantMode::kMxfp4, QuantMode::kMxfp8, QuantMode::kNvfp4}) {
    for (int b : bits_list) {
      for (int g : groups) {
        bool want = false;
        switch (m) {
          case QuantMode::kAffine:
            want = (b >= 1 && b <= 8 && b != 7) && (g == 32 || g == 64 || g == 128);
            break;
          case QuantMode::kMxfp4:
            want = b == 4 && g == 32;
            break;
          case QuantMode::kMxfp8:
            want = b == 8 && g == 32;
            break;
          case QuantMode::kNvfp4:
            want = b == 4 && g == 16;
            break;
          case QuantMode::kNone:
            break;
        }
        const QuantSpec spec{m, b, g};
        SCOPED_TRACE(spec.to_string());
        if (want) {
          EXPECT_NO_THROW(validate_quant_spec(spec, "layer.w"));
          ++accepted;
        } else {
          try {
            validate_quant_spec(spec, "model.layers.0.mlp.gate_proj");
            ADD_FAILURE() << "accepted";
          } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.rfind("model.layers.0.mlp.gate_proj: ", 0), 0u) << msg;
          }
        }
      }
    }
  }
  EXPECT_EQ(accepted, 7 * 3 + 3);
  EXPECT_NO_THROW(validate_quant_spec(QuantSpec{}, "x"));
  EXPECT_TRUE(affine_bits_supported(1));
  EXPECT_FALSE(affine_bits_supported(7));
}

TEST(QuantFormat, PackedWordsAndBiases) {
  for (int b : {1, 2, 3, 4, 5, 6, 8}) {
    EXPECT_EQ(packed_words_per_row({QuantMode::kAffine, b, 32}, 128), 128 * b / 32);
    EXPECT_EQ(packed_words_per_row({QuantMode::kAffine, b, 64}, 6144), 6144 * b / 32);
  }
  EXPECT_EQ(packed_words_per_row({QuantMode::kAffine, 3, 32}, 32), 3);
  EXPECT_EQ(packed_words_per_row(default_quant_spec(QuantMode::kMxfp4), 256), 32);
  EXPECT_EQ(packed_words_per_row(default_quant_spec(QuantMode::kMxfp8), 256), 64);
  EXPECT_EQ(packed_words_per_row(default_quant_spec(QuantMode::kNvfp4), 256), 32);
  EXPECT_EQ(packed_words_per_row(QuantSpec{}, 256), 0);
  EXPECT_TRUE(quant_mode_has_biases(QuantMode::kAffine));
  EXPECT_FALSE(quant_mode_has_biases(QuantMode::kMxfp4));
  EXPECT_FALSE(quant_mode_has_biases(QuantMode::kMxfp8));
  EXPECT_FALSE(quant_mode_has_biases(QuantMode::kNvfp4));
  EXPECT_FALSE(quant_mode_has_biases(QuantMode::kNone));
}

QMatrix shape_only(QuantSpec spec, int64_t rows, int64_t cols, DType scales, size_t pad = 0) {
  QMatrix m;
  m.spec = spec;
  m.rows = rows;
  m.cols = cols;
  m.dtype = spec.quantized() ? DType::kU32 : scales;
  m.row_bytes = m.packed_row_bytes() + pad;
  m.scales_dtype = scales;
  m.biases_dtype = scales;
  m.scales_row_bytes = static_cast<size_t>(m.groups_per_row()) * dtype_size(scales) + pad;
  m.biases_row_bytes = m.scales_row_bytes;
  return m;
}

TEST(QMatrix, StorageBytes) {
  // 4-bit g64 [12288, 6144] with bf16 scales and biases.
  const QMatrix a = shape_only({QuantMode::kAffine, 4, 64}, 12288, 6144, DType::kBF16);
  EXPECT_EQ(a.storage_bytes(), 12288ull * 6144 / 2 + 2ull * 12288 * 96 * 2);
  // Stride padding is not counted.
  const QMatrix padded = shape_only({QuantMode::kAffine, 4, 64}, 12288, 6144, DType::kBF16, 12);
  EXPECT_EQ(padded.storage_bytes(), a.storage_bytes());
  // 3-bit g32 f32 scales.
  EXPECT_EQ(shape_only({QuantMode::kAffine, 3, 32}, 5, 128, DType::kF32).storage_bytes(),
            5ull * 48 + 2ull * 5 * 4 * 4);
  // mx/nv: one byte per group, no biases.
  EXPECT_EQ(shape_only(default_quant_spec(QuantMode::kMxfp4), 7, 256, DType::kU8).storage_bytes(),
            7ull * 128 + 7ull * 8);
  EXPECT_EQ(shape_only(default_quant_spec(QuantMode::kMxfp8), 7, 256, DType::kU8).storage_bytes(),
            7ull * 256 + 7ull * 8);
  EXPECT_EQ(shape_only(default_quant_spec(QuantMode::kNvfp4), 7, 256, DType::kU8).storage_bytes(),
            7ull * 128 + 7ull * 16);
  // Unquantized.
  EXPECT_EQ(shape_only(QuantSpec{}, 3, 10, DType::kBF16).storage_bytes(), 60ull);
  EXPECT_EQ(shape_only(QuantSpec{}, 3, 10, DType::kF32).storage_bytes(), 120ull);
}

TEST(QMatrix, ValidateQMatrix) {
  static const uint8_t dummy[64] = {};
  auto make = [](QuantSpec spec, DType sd) {
    QMatrix m = shape_only(spec, 2, 64, sd);
    m.data = dummy;
    m.scales = dummy;
    if (quant_mode_has_biases(spec.mode)) m.biases = dummy;
    return m;
  };
  EXPECT_NO_THROW(validate_qmatrix(make({QuantMode::kAffine, 4, 32}, DType::kBF16), "w"));
  EXPECT_NO_THROW(validate_qmatrix(make({QuantMode::kAffine, 3, 64}, DType::kF16), "w"));
  EXPECT_NO_THROW(validate_qmatrix(make({QuantMode::kMxfp4, 4, 32}, DType::kU8), "w"));
  EXPECT_NO_THROW(validate_qmatrix(make({QuantMode::kMxfp8, 8, 32}, DType::kF8E8M0), "w"));
  EXPECT_NO_THROW(validate_qmatrix(make({QuantMode::kNvfp4, 4, 16}, DType::kU8), "w"));
  EXPECT_NO_THROW(validate_qmatrix(make(QuantSpec{}, DType::kBF16), "w"));

  auto expect_error = [](const QMatrix& m, const char* why) {
    SCOPED_TRACE(why);
    try {
      validate_qmatrix(m, "blk.w");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("blk.w: ", 0), 0u) << e.what();
    }
  };
  QMatrix m = make({QuantMode::kAffine, 4, 64}, DType::kBF16);
  m.cols = 96;
  expect_error(m, "cols not a multiple of group");
  m = make({QuantMode::kAffine, 4, 64}, DType::kBF16);
  m.biases = nullptr;
  expect_error(m, "no biases");
  m = make({QuantMode::kAffine, 4, 64}, DType::kU8);
  expect_error(m, "u8 affine scales");
  m = make({QuantMode::kMxfp4, 4, 32}, DType::kBF16);
  expect_error(m, "bf16 mx scales");
  m = make({QuantMode::kMxfp4, 4, 32}, DType::kU8);
  m.biases = dummy;
  expect_error(m, "mx biases");
  m = make({QuantMode::kAffine, 4, 64}, DType::kBF16);
  m.dtype = DType::kU8;
  expect_error(m, "u8 packed data");
  m = make({QuantMode::kAffine, 4, 64}, DType::kBF16);
  m.row_bytes -= 4;
  expect_error(m, "short stride");
  m = make({QuantMode::kAffine, 7, 64}, DType::kBF16);
  expect_error(m, "7 bits");
  m = make(QuantSpec{}, DType::kU8);
  expect_error(m, "u8 unquantized");
}

}  // namespace
}  // namespace qcoder
