// RMSNorm, RoPE, softmax, SwiGLU and axpy on every compiled target against the scalar
// references, over awkward lengths and misaligned pointers.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "kernels/reference/ops.h"
#include "simd_test_util.h"

namespace qcoder {
namespace {

using test::Floats;
using test::for_each_target;

const int64_t kSizes[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 100, 128, 257, 2049};
constexpr double kEps = 5.96e-8;  // 2^-24

TEST(SimdOps, RmsNorm) {
  for_each_target([] {
    std::mt19937 rng(1);
    for (int64_t n : kSizes) {
      Floats x(n, rng, 3.0f), w(n, rng), y(n, rng, 1.0f, 3), ref(n, rng);
      ops::rms_norm(x.p, w.p, n, 1e-6, y.p);
      ref::rms_norm(x.p, w.p, n, 1e-6, ref.p);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(y.p[i], ref.p[i], std::fabs(ref.p[i]) * kEps * (static_cast<double>(n) + 8)) << n << " " << i;
      // In place.
      ops::rms_norm(x.p, w.p, n, 1e-6, x.p);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(x.p[i], y.p[i]);
    }
  });
}

TEST(SimdOps, Rope) {
  for_each_target([] {
    std::mt19937 rng(2);
    for (int64_t dim : {2, 6, 16, 24, 34, 64, 128, 130}) {
      for (int64_t pos : {0, 1, 17, 40000}) {
        Floats x(dim, rng), cs(dim / 2, rng), sn(dim / 2, rng);
        ref::rope_angles(pos, dim, 1e7, cs.p, sn.p);
        std::vector<float> want(x.p, x.p + dim);
        ref::rope_rotate_half(want.data(), dim, cs.p, sn.p);
        std::vector<float> orig(x.p, x.p + dim);
        ops::rope_rotate_half(x.p, dim, cs.p, sn.p);
        const int64_t half = dim / 2;
        for (int64_t i = 0; i < dim; ++i) {
          const int64_t j = i % half;
          const double mag = std::fabs(orig[j] * cs.p[j]) + std::fabs(orig[j + half] * sn.p[j]) +
                             std::fabs(orig[j] * sn.p[j]) + std::fabs(orig[j + half] * cs.p[j]);
          ASSERT_NEAR(x.p[i], want[i], 2 * kEps * mag) << dim << " " << i;
        }
      }
    }
  });
}

TEST(SimdOps, Softmax) {
  for_each_target([] {
    std::mt19937 rng(3);
    for (int64_t n : kSizes) {
      Floats x(n, rng, 4.0f);
      std::vector<float> want(x.p, x.p + n);
      ref::softmax(want.data(), n);
      ops::softmax(x.p, n);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(x.p[i], want[i], want[i] * kEps * (static_cast<double>(n) + 64)) << n << " " << i;
    }
    // Extreme values: one dominant entry, -inf entries.
    std::vector<float> e = {-INFINITY, 1000.0f, -1000.0f, 0.0f, 999.0f};
    ops::softmax(e.data(), static_cast<int64_t>(e.size()));
    EXPECT_EQ(e[0], 0.0f);
    EXPECT_NEAR(e[1], 1.0f / (1.0f + std::exp(-1.0f)), 1e-6);
  });
}

TEST(SimdOps, SwigluAndAxpy) {
  for_each_target([] {
    std::mt19937 rng(4);
    for (int64_t n : kSizes) {
      Floats g(n, rng, 6.0f), u(n, rng), out(n, rng, 1.0f, 2);
      std::vector<float> want(static_cast<size_t>(n));
      ref::swiglu(g.p, u.p, n, want.data());
      ops::swiglu(g.p, u.p, n, out.p);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(out.p[i], want[i], std::fabs(want[i]) * 8 * kEps + 1e-30) << n << " " << i;
      ops::swiglu(g.p, u.p, n, g.p);  // out aliases gate
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(g.p[i], out.p[i]);
      std::vector<float> y(u.p, u.p + n), y2 = y;
      ops::axpy(0.37f, out.p, n, y.data());
      for (int64_t i = 0; i < n; ++i) {
        const float p = 0.37f * out.p[i];
        ASSERT_NEAR(y[i], y2[i] + p, (std::fabs(p) + std::fabs(y2[i])) * 2 * kEps);
      }
    }
  });
}

}  // namespace
}  // namespace qcoder
