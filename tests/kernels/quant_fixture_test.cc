// The reference kernels against MLX itself: tests/fixtures/quant/quant_vectors.safetensors,
// written by tests/reference/make_quant_vectors.py with mlx 0.32.4 (mx.quantize /
// mx.dequantize), read with a self-contained parser (mini_safetensors.h).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kernels/reference/quant_ref.h"
#include "mini_safetensors.h"
#include "quant_test_util.h"

namespace qcoder {
namespace {

using test::MiniSafetensors;
using test::same_float;

const MiniSafetensors& fixture() {
  static const auto* f = new MiniSafetensors(std::string(QCODER_SOURCE_DIR) +
                                             "/tests/fixtures/quant/quant_vectors.safetensors");
  return *f;
}

struct Case {
  std::string name;
  bool raw = false;
  std::unique_ptr<test::OwnedQMatrix> q;  // unaligned, padded copy
  QMatrix direct;                         // straight view into the file bytes
};

DType dtype_of(const test::StTensor& t) {
  auto d = parse_dtype(t.dtype);
  if (!d) throw std::runtime_error("unknown dtype " + t.dtype);
  return *d;
}

std::vector<uint8_t> bytes_of(const test::StTensor& t) {
  return std::vector<uint8_t>(t.data, t.data + t.nbytes);
}

std::vector<Case> load_cases() {
  const auto& f = fixture();
  const auto cases = nlohmann::json::parse(f.metadata().at("cases").get<std::string>());
  std::vector<Case> out;
  for (const auto& c : cases) {
    Case k;
    k.name = c.at("name").get<std::string>();
    k.raw = c.value("raw", false);
    const auto mode = parse_quant_mode(c.at("mode").get<std::string>());
    if (!mode) throw std::runtime_error("bad mode in " + k.name);
    const QuantSpec spec{*mode, c.at("bits").get<int>(), c.at("group_size").get<int>()};
    const auto& w = f.at(k.name + ".weight");
    const auto& s = f.at(k.name + ".scales");
    const int64_t rows = w.shape.at(0);
    const int64_t cols = c.at("cols").get<int64_t>();
    if (w.dtype != "U32" || rows != c.at("rows").get<int64_t>() ||
        w.shape.at(1) != packed_words_per_row(spec, cols))
      throw std::runtime_error("unexpected weight shape in " + k.name);
    const bool has_b = f.has(k.name + ".biases");
    if (has_b != quant_mode_has_biases(spec.mode))
      throw std::runtime_error("biases presence mismatch in " + k.name);
    const DType sd = dtype_of(s);
    const DType bd = has_b ? dtype_of(f.at(k.name + ".biases")) : sd;
    k.q = std::make_unique<test::OwnedQMatrix>(
        spec, rows, cols, DType::kU32, bytes_of(w), sd, bytes_of(s), bd,
        has_b ? bytes_of(f.at(k.name + ".biases")) : std::vector<uint8_t>{});
    QMatrix& d = k.direct;
    d.spec = spec;
    d.rows = rows;
    d.cols = cols;
    d.data = w.data;
    d.dtype = DType::kU32;
    d.row_bytes = static_cast<size_t>(w.shape[1]) * 4;
    d.scales = s.data;
    d.scales_dtype = sd;
    d.scales_row_bytes = static_cast<size_t>(s.shape.at(1)) * dtype_size(sd);
    if (has_b) {
      const auto& b = f.at(k.name + ".biases");
      d.biases = b.data;
      d.biases_dtype = bd;
      d.biases_row_bytes = static_cast<size_t>(b.shape.at(1)) * dtype_size(bd);
    }
    out.push_back(std::move(k));
  }
  return out;
}

const std::vector<Case>& cases() {
  static const auto* c = new std::vector<Case>(load_cases());
  return *c;
}

TEST(QuantFixture, CoversEveryFormat) {
  int affine = 0, fp = 0, raw = 0;
  for (const auto& c : cases()) {
    EXPECT_NO_THROW(validate_qmatrix(c.direct, c.name));
    EXPECT_NO_THROW(validate_qmatrix(c.q->m, c.name));
    if (c.raw)
      ++raw;
    else if (c.direct.spec.mode == QuantMode::kAffine)
      ++affine;
    else
      ++fp;
  }
  EXPECT_EQ(affine, 7 * 3 + 2);  // bits {1..6,8} x groups {32,64,128}, + f32 and f16 scales
  EXPECT_EQ(fp, 3);
  EXPECT_EQ(raw, 3);
  EXPECT_EQ(fixture().metadata().at("mlx_version").get<std::string>(), "0.32.4");
}

// Dequantization is exactly MLX's: bitwise equal (NaN matches any NaN) for every element.
TEST(QuantFixture, DequantizeRowMatchesMlxBitwise) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    const auto want = test::to_f32_vector(fixture().at(c.name + ".dequant"));
    const QMatrix& m = c.direct;
    ASSERT_EQ(want.size(), static_cast<size_t>(m.rows * m.cols));
    std::vector<float> a(m.cols), b(m.cols);
    int bad = 0;
    for (int64_t r = 0; r < m.rows; ++r) {
      ref::dequantize_row(m, r, a.data());
      ref::dequantize_row(c.q->m, r, b.data());  // unaligned, padded strides
      for (int64_t i = 0; i < m.cols; ++i) {
        const float w = want[r * m.cols + i];
        if ((!same_float(a[i], w) || !same_float(b[i], w)) && ++bad < 5)
          ADD_FAILURE() << "row " << r << " col " << i << ": got " << a[i] << " / " << b[i]
                        << ", mlx " << w;
      }
    }
    EXPECT_EQ(bad, 0);
  }
}

// Y = X @ W^T against the float64 product of MLX's dequantized W. The bound is the standard
// one for a float32 dot product of n terms summed in order (Higham, Accuracy and Stability,
// 3.1): |fl(sum) - sum| <= gamma_n * sum|w_c x_c|, gamma_n = n u / (1 - n u), u = 2^-24,
// plus u*|y| for the fixture's float64 -> float32 rounding of y.
TEST(QuantFixture, MatmulMatchesFloat64Product) {
  const double u = std::ldexp(1.0, -24);
  for (const auto& c : cases()) {
    if (c.raw) continue;
    SCOPED_TRACE(c.name);
    const auto& f = fixture();
    const auto x = test::to_f32_vector(f.at(c.name + ".x"));
    const auto y_ref = test::to_f32_vector(f.at(c.name + ".y"));
    const auto deq = test::to_f32_vector(f.at(c.name + ".dequant"));
    const QMatrix& m = c.q->m;
    const int64_t n_tokens = static_cast<int64_t>(x.size()) / m.cols;
    ASSERT_EQ(n_tokens, 3);
    std::vector<float> y(static_cast<size_t>(n_tokens * m.rows), -1.0f);
    ref::matmul_rows(m, x.data(), n_tokens, y.data(), 0, m.rows);
    const double n = static_cast<double>(m.cols);
    const double gamma = n * u / (1.0 - n * u);
    double worst = 0.0;
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t r = 0; r < m.rows; ++r) {
        double abs_sum = 0.0;
        for (int64_t i = 0; i < m.cols; ++i)
          abs_sum += std::fabs(static_cast<double>(deq[r * m.cols + i]) * x[t * m.cols + i]);
        const double ref = y_ref[t * m.rows + r];
        const double err = std::fabs(static_cast<double>(y[t * m.rows + r]) - ref);
        const double bound = gamma * abs_sum + u * std::fabs(ref) + 1e-37;
        EXPECT_LE(err, bound) << "token " << t << " row " << r;
        if (bound > 0) worst = std::max(worst, err / bound);
      }
    }
    RecordProperty(c.name + "_worst_err_over_bound", std::to_string(worst));
  }
}

// A row's outputs do not depend on n_tokens or on the row range of the call.
TEST(QuantFixture, MatmulIndependentOfBatchAndRowSplit) {
  for (const auto& c : cases()) {
    if (c.raw) continue;
    SCOPED_TRACE(c.name);
    const auto x = test::to_f32_vector(fixture().at(c.name + ".x"));
    const QMatrix& m = c.q->m;
    const int64_t n_tokens = 3;
    std::vector<float> full(static_cast<size_t>(n_tokens * m.rows));
    ref::matmul_rows(m, x.data(), n_tokens, full.data(), 0, m.rows);

    // One token at a time.
    for (int64_t t = 0; t < n_tokens; ++t) {
      std::vector<float> y1(static_cast<size_t>(m.rows), 0.0f);
      ref::matmul_rows(m, x.data() + t * m.cols, 1, y1.data(), 0, m.rows);
      for (int64_t r = 0; r < m.rows; ++r)
        EXPECT_TRUE(same_float(y1[r], full[t * m.rows + r])) << "t " << t << " r " << r;
    }
    // Every split point, and one row per call; untouched rows keep their sentinel.
    for (int64_t split = 0; split <= m.rows; ++split) {
      std::vector<float> y(full.size(), 12345.0f);
      ref::matmul_rows(m, x.data(), n_tokens, y.data(), split, m.rows);
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < split; ++r) EXPECT_EQ(y[t * m.rows + r], 12345.0f);
      ref::matmul_rows(m, x.data(), n_tokens, y.data(), 0, split);
      for (size_t i = 0; i < y.size(); ++i) EXPECT_TRUE(same_float(y[i], full[i])) << i;
    }
    std::vector<float> y(full.size(), 0.0f);
    for (int64_t r = m.rows - 1; r >= 0; --r)
      ref::matmul_rows(m, x.data(), n_tokens, y.data(), r, r + 1);
    for (size_t i = 0; i < y.size(); ++i) EXPECT_TRUE(same_float(y[i], full[i])) << i;
  }
}

// The MLX-written matrices also match the independent per-element decoder.
TEST(QuantFixture, IndependentDecodeMatchesMlx) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    const auto want = test::to_f32_vector(fixture().at(c.name + ".dequant"));
    const QMatrix& m = c.direct;
    int bad = 0;
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t i = 0; i < m.cols; ++i)
        if (!same_float(test::indep_element(m, r, i), want[r * m.cols + i]) && ++bad < 5)
          ADD_FAILURE() << "row " << r << " col " << i;
    EXPECT_EQ(bad, 0);
  }
}

}  // namespace
}  // namespace qcoder
