// The quantized and float matrix products on every compiled target against the scalar
// reference (ref::matmul_rows), for every MLX format, awkward shapes, unaligned data and
// padded strides; plus bitwise invariance of each output row to the number of tokens, the
// token order, the row split and the path (matrix-vector vs matrix-matrix).
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "kernels/reference/quant_ref.h"
#include "quant_test_util.h"
#include "simd_test_util.h"

namespace qcoder {
namespace {

using test::for_each_target;
using test::OwnedQMatrix;

// The activation width the matrices under test ask for (QMatrix::act_bits): 16 (default) or 8
// (--fast); the tests run once each way.
int g_act_bits = 16;

struct Case {
  QuantSpec spec;
  DType dtype = DType::kU32;        // data dtype (kNone: F32/BF16/F16)
  DType scales = DType::kBF16;
  std::string name() const {
    return spec.quantized() ? spec.to_string() : std::string("float ") + std::string(dtype_name(dtype));
  }
};

// Float values stored as `t` (F32, F16 or BF16) bytes.
std::vector<uint8_t> float_bytes(const std::vector<float>& v, DType t) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::kF32) {
      std::memcpy(&out[4 * i], &v[i], 4);
    } else {
      const uint16_t h = t == DType::kBF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      std::memcpy(&out[2 * i], &h, 2);
    }
  }
  return out;
}

// A random matrix of the case's format. Affine scales may be negative (MLX's rule), biases
// of either sign; fp formats use scales that keep values in a sane range and no NaN codes.
OwnedQMatrix random_matrix(const Case& c, int64_t rows, int64_t cols, std::mt19937& rng,
                           size_t offset, size_t pad) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  if (!c.spec.quantized()) {
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (auto& x : v) x = uni(rng);
    const std::vector<uint8_t> data = float_bytes(v, c.dtype);
    return OwnedQMatrix(c.spec, rows, cols, c.dtype, data, DType::kBF16, {}, DType::kBF16, {}, offset, pad);
  }
  const int64_t words = packed_words_per_row(c.spec, cols);
  std::vector<uint8_t> data(static_cast<size_t>(rows * words * 4));
  for (auto& b : data) b = static_cast<uint8_t>(byte(rng));
  if (c.spec.mode == QuantMode::kMxfp8)
    for (auto& b : data)
      if ((b & 0x7f) == 0x7f) b = 0x3c;
  const int64_t groups = cols / c.spec.group_size;
  const size_t ng = static_cast<size_t>(rows * groups);
  if (c.spec.mode == QuantMode::kAffine) {
    std::vector<float> s(ng), b(ng);
    for (size_t i = 0; i < ng; ++i) {
      s[i] = uni(rng) * 0.05f;
      b[i] = uni(rng) * 0.5f;
    }
    if (ng > 2) s[1] = 0.0f;  // a zero scale
    OwnedQMatrix q(c.spec, rows, cols, DType::kU32, data, c.scales, float_bytes(s, c.scales), c.scales,
                   float_bytes(b, c.scales), offset, pad);
    q.m.act_bits = g_act_bits;
    return q;
  }
  std::vector<uint8_t> s(ng);
  for (auto& v : s)
    v = static_cast<uint8_t>(c.spec.mode == QuantMode::kNvfp4 ? 0x20 + byte(rng) % 0x30 : 118 + byte(rng) % 10);
  OwnedQMatrix q(c.spec, rows, cols, DType::kU32, data, DType::kU8, s, DType::kU8, {}, offset, pad);
  q.m.act_bits = g_act_bits;
  return q;
}

// |sw * q| + |bias| for affine (the magnitudes the integer path sums), |w| otherwise.
double magnitude(const QMatrix& m, int64_t r, int64_t c) {
  const double w = std::fabs(test::indep_element(m, r, c));
  if (m.spec.mode != QuantMode::kAffine) return w;
  const int64_t g = c / m.spec.group_size;
  const double s = std::fabs(test::indep_load_float(m.scales_dtype, m.scales + r * m.scales_row_bytes, g));
  const double b = std::fabs(test::indep_load_float(m.biases_dtype, m.biases + r * m.biases_row_bytes, g));
  const uint32_t q = test::stream_bits(m.data + r * m.row_bytes, c * m.spec.bits, m.spec.bits);
  return s * q + b;
}

// Checks ops::matmul against ref::matmul_rows within the error bound of the path: int16
// activations (|x - x^| <= amax/32639/2 per group; 127 for 8-bit ones) plus float32 rounding of
// both sides.
void check_against_reference(const QMatrix& m, const float* X, int64_t n, const std::string& what) {
  ops::PreparedActs acts;
  ops::prepare_acts(m, X, n, acts);
  std::vector<float> y(static_cast<size_t>(n * m.rows), -1.0f), want(y.size());
  ops::matmul(m, acts, nullptr, n, y.data(), m.rows, 0, m.rows);
  ref::matmul_rows(m, X, n, want.data(), 0, m.rows);
  const bool integer = acts.integer;
  const double xmax = m.act_bits == 8 ? 127.0 : 32639.0;
  const int group = m.spec.group_size;
  const double eps = 5.96e-8;
  for (int64_t t = 0; t < n; ++t) {
    const float* x = X + t * m.cols;
    std::vector<double> amax(static_cast<size_t>(m.cols), 0.0);  // per column: its group's max |x|
    if (integer)
      for (int64_t g0 = 0; g0 < m.cols; g0 += group) {
        double a = 0.0;
        for (int64_t i = g0; i < g0 + group; ++i) a = std::max(a, static_cast<double>(std::fabs(x[i])));
        std::fill(amax.begin() + g0, amax.begin() + g0 + group, a);
      }
    for (int64_t r = 0; r < m.rows; ++r) {
      double quant = 0.0, mag = 0.0;
      for (int64_t c = 0; c < m.cols; ++c) {
        const double mc = magnitude(m, r, c);
        mag += mc * (std::fabs(x[c]) + amax[c] / xmax);
        if (integer) quant += std::fabs(test::indep_element(m, r, c)) * amax[c] / xmax * 0.5001;
      }
      const double bound = quant + 2.0 * (static_cast<double>(m.cols) + 8) * eps * mag + 1e-30;
      const float got = y[t * m.rows + r], ref = want[t * m.rows + r];
      ASSERT_LE(std::fabs(static_cast<double>(got) - ref), bound)
          << what << " token " << t << " row " << r << " got " << got << " want " << ref;
    }
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (int bits : {1, 2, 3, 4, 5, 6, 8})
    for (int group : {32, 64, 128}) cases.push_back({{QuantMode::kAffine, bits, group}});
  cases.push_back({{QuantMode::kAffine, 4, 64}, DType::kU32, DType::kF16});
  cases.push_back({{QuantMode::kAffine, 8, 32}, DType::kU32, DType::kF32});
  cases.push_back({default_quant_spec(QuantMode::kMxfp4)});
  cases.push_back({default_quant_spec(QuantMode::kNvfp4)});
  cases.push_back({default_quant_spec(QuantMode::kMxfp8)});
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) cases.push_back({{}, t});
  return cases;
}

void MatchesReferenceEveryFormatAndTarget() {
  for_each_target([] {
    std::mt19937 rng(11);
    for (const Case& c : all_cases()) {
      const int64_t g = c.spec.quantized() ? c.spec.group_size : 16;
      for (int64_t rows : {1, 7, 33}) {
        for (int64_t cols : {g, 2 * g, 5 * g}) {  // 2g: whole 128-element blocks for g64
          const size_t offset = 1 + static_cast<size_t>(rows % 3), pad = rows == 7 ? 0 : 3;
          OwnedQMatrix q = random_matrix(c, rows, cols, rng, offset, pad);
          // 9: the matrix-matrix kernel; 33: on AVX3_DL its byte form (kX8MinRows), with a tail
          // (on the 7-row matrices only: the reference check is O(n * rows * cols) in double)
          for (int64_t n : {1, 3, 9, 33}) {
            if (n == 33 && rows != 7) continue;
            test::Floats X(static_cast<size_t>(n * cols), rng, 1.0f, 1 + static_cast<size_t>(n % 2));
            if (cols >= 2 * g) std::fill(X.p + g, X.p + 2 * g, 0.0f);  // an all-zero group
            X.p[0] *= 100.0f;                                           // an outlier
            check_against_reference(q.m, X.p, n, c.name() + " " + std::to_string(rows) + "x" +
                                                     std::to_string(cols) + " n=" + std::to_string(n));
          }
        }
      }
    }
  });
}

// A row's bits must not depend on the rest of the call.
void RowsAreInvariant() {
  for_each_target([] {
    std::mt19937 rng(12);
    for (const Case& c : all_cases()) {
      const int64_t g = c.spec.quantized() ? c.spec.group_size : 16;
      const int64_t rows = 37, cols = 4 * g, n = 70;  // > one token block
      OwnedQMatrix q = random_matrix(c, rows, cols, rng, 3, 1);
      test::Floats X(static_cast<size_t>(n * cols), rng);
      ops::PreparedActs acts;
      ops::prepare_acts(q.m, X.p, n, acts);
      std::vector<float> all(static_cast<size_t>(n * rows));
      ops::matmul(q.m, acts, nullptr, n, all.data(), rows, 0, rows);
      // One token at a time, rows split unevenly.
      for (int64_t t = 0; t < n; t += 7) {
        ops::PreparedActs one;
        ops::prepare_acts(q.m, X.p + t * cols, 1, one);
        std::vector<float> y(static_cast<size_t>(rows));
        ops::matmul(q.m, one, nullptr, 1, y.data(), rows, 0, 5);
        ops::matmul(q.m, one, nullptr, 1, y.data(), rows, 5, rows);
        for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(y[r], all[t * rows + r]) << c.name() << " t" << t << " r" << r;
      }
      // Tokens gathered in another order through an index list (as MoE experts do), and rows
      // prepared through row_ids.
      std::vector<int32_t> perm;
      for (int64_t t = n - 1; t >= 0; t -= 3) perm.push_back(static_cast<int32_t>(t));
      const int64_t np = static_cast<int64_t>(perm.size());
      std::vector<float> yp(static_cast<size_t>(np * rows));
      ops::matmul(q.m, acts, perm.data(), np, yp.data(), rows, 0, rows);
      ops::PreparedActs gathered;
      ops::prepare_acts(q.m, X.p, np, gathered, perm.data());
      std::vector<float> yg(yp.size());
      ops::matmul(q.m, gathered, nullptr, np, yg.data(), rows, 0, rows);
      for (int64_t i = 0; i < np; ++i)
        for (int64_t r = 0; r < rows; ++r) {
          ASSERT_EQ(yp[i * rows + r], all[perm[i] * rows + r]) << c.name();
          ASSERT_EQ(yg[i * rows + r], all[perm[i] * rows + r]) << c.name();
        }
    }
  });
}


// The decode kernels (one token; on AVX3_DL the four-row kernel with the epilogue fused in)
// against the matrix-matrix path bitwise and against the reference, over the shapes of real
// models (group counts that are and are not multiples of 4, row counts with 1-3 rows left
// over, row splits that do not fall on 4 or 16 rows, unaligned data).
void DecodeRowsMatchBatchedBitwise() {
  for_each_target([] {
    std::mt19937 rng(13);
    for (int group : {64, 128})
      for (int64_t cols : {128, 384, 768, 2048})
        for (int64_t rows : {1, 3, 5, 22, 70}) {
          const Case c{{QuantMode::kAffine, 4, group}};
          OwnedQMatrix q = random_matrix(c, rows, cols, rng, 1 + static_cast<size_t>(rows % 5), 0);
          const int64_t n = 9;
          test::Floats X(static_cast<size_t>(n * cols), rng);
          X.p[3] *= 50.0f;
          ops::PreparedActs acts;
          ops::prepare_acts(q.m, X.p, n, acts);
          std::vector<float> all(static_cast<size_t>(n * rows));
          ops::matmul(q.m, acts, nullptr, n, all.data(), rows, 0, rows);
          const std::string what = c.name() + " " + std::to_string(rows) + "x" + std::to_string(cols);
          for (int64_t t = 0; t < n; t += 4) {
            ops::PreparedActs one;
            ops::prepare_acts(q.m, X.p + t * cols, 1, one);
            std::vector<float> y(static_cast<size_t>(rows), -1.0f);
            const int64_t cut = std::min<int64_t>(rows, 6);
            ops::matmul(q.m, one, nullptr, 1, y.data(), rows, 0, cut);
            ops::matmul(q.m, one, nullptr, 1, y.data(), rows, cut, rows);
            for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(y[r], all[t * rows + r]) << what << " t" << t << " r" << r;
            // Through a token index (as MoE experts gather rows).
            const int32_t tok = static_cast<int32_t>(t);
            std::vector<float> yi(static_cast<size_t>(rows), -1.0f);
            ops::matmul(q.m, acts, &tok, 1, yi.data(), rows, 0, rows);
            for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(yi[r], all[t * rows + r]) << what << " t" << t << " r" << r;
          }
          check_against_reference(q.m, X.p, 1, what + " n=1");
        }
  });
}

// 2-7 tokens (a routed expert's rows in a decode batch; on AVX3_DL the four-row fused kernel
// with each weight block read once for all the tokens): each token's row is bitwise the
// one-token result, whatever the other tokens, their order (index lists with a repeat), or
// the row split; and within the reference's bound.
void FewTokensMatchOneTokenBitwise() {
  for_each_target([] {
    std::mt19937 rng(14);
    for (int group : {64, 128})
      for (int64_t cols : {128, 384, 2048})
        for (int64_t rows : {1, 3, 5, 22, 70}) {
          const Case c{{QuantMode::kAffine, 4, group}};
          OwnedQMatrix q = random_matrix(c, rows, cols, rng, 1 + static_cast<size_t>(rows % 5), 0);
          const int64_t n_all = 9;
          test::Floats X(static_cast<size_t>(n_all * cols), rng);
          X.p[5] *= 40.0f;
          ops::PreparedActs acts;
          ops::prepare_acts(q.m, X.p, n_all, acts);
          // One token at a time (the decode kernel), through a token index.
          std::vector<float> one(static_cast<size_t>(n_all * rows));
          for (int32_t t = 0; t < n_all; ++t) ops::matmul(q.m, acts, &t, 1, &one[t * rows], rows, 0, rows);
          const std::string what = c.name() + " " + std::to_string(rows) + "x" + std::to_string(cols);
          for (int64_t n = 2; n <= 7; ++n) {
            std::vector<int32_t> toks;
            for (int64_t i = 0; i < n; ++i) toks.push_back(static_cast<int32_t>((i * 5 + n) % n_all));
            if (n >= 4) toks[3] = toks[1];  // a repeated row
            std::vector<float> y(static_cast<size_t>(n * rows), -1.0f);
            const int64_t cut = std::min<int64_t>(rows, 7);
            ops::matmul(q.m, acts, toks.data(), n, y.data(), rows, 0, cut);
            ops::matmul(q.m, acts, toks.data(), n, y.data(), rows, cut, rows);
            for (int64_t i = 0; i < n; ++i)
              for (int64_t r = 0; r < rows; ++r)
                ASSERT_EQ(y[i * rows + r], one[toks[i] * rows + r]) << what << " n" << n << " i" << i << " r" << r;
            // Without an index list: tokens 0..n-1 of the prepared rows.
            std::vector<float> yd(static_cast<size_t>(n * rows), -1.0f);
            ops::matmul(q.m, acts, nullptr, n, yd.data(), rows, 0, rows);
            for (int64_t i = 0; i < n; ++i)
              for (int64_t r = 0; r < rows; ++r)
                ASSERT_EQ(yd[i * rows + r], one[i * rows + r]) << what << " n" << n << " i" << i << " r" << r;
          }
          check_against_reference(q.m, X.p, 5, what + " n=5");
        }
  });
}

// Each check with 16-bit activations (the default) and with 8-bit ones (--fast: the VNNI
// kernels on one int8 plane, the others on the same integers as int16).
class ActBits {
 public:
  explicit ActBits(int bits) { g_act_bits = bits; }
  ~ActBits() { g_act_bits = 16; }
};

TEST(SimdMatmul, MatchesReferenceEveryFormatAndTarget) { MatchesReferenceEveryFormatAndTarget(); }
TEST(SimdMatmul, RowsAreInvariant) { RowsAreInvariant(); }
TEST(SimdMatmul, DecodeRowsMatchBatchedBitwise) { DecodeRowsMatchBatchedBitwise(); }
TEST(SimdMatmul, FewTokensMatchOneTokenBitwise) { FewTokensMatchOneTokenBitwise(); }

TEST(SimdMatmulFast, MatchesReferenceEveryFormatAndTarget) {
  const ActBits bits(8);
  MatchesReferenceEveryFormatAndTarget();
}
TEST(SimdMatmulFast, RowsAreInvariant) {
  const ActBits bits(8);
  RowsAreInvariant();
}
TEST(SimdMatmulFast, DecodeRowsMatchBatchedBitwise) {
  const ActBits bits(8);
  DecodeRowsMatchBatchedBitwise();
}
TEST(SimdMatmulFast, FewTokensMatchOneTokenBitwise) {
  const ActBits bits(8);
  FewTokensMatchOneTokenBitwise();
}

}  // namespace
}  // namespace qcoder
