// Helpers for the SIMD kernel tests: run a check once per compiled Highway target the CPU
// supports (the public ops dispatch to it), and random inputs.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "hwy/targets.h"
#include "kernels/ops.h"

namespace qcoder::test {

// Calls f() with each supported target forced in turn (the dispatcher picks it), then
// restores the default.
template <class F>
void for_each_target(F f) {
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  for (int64_t t : targets) {
    hwy::SetSupportedTargetsForTest(t);
    SCOPED_TRACE(hwy::TargetName(t));
    ASSERT_EQ(ops::active_target(), hwy::TargetName(t));
    f();
  }
  hwy::SetSupportedTargetsForTest(0);
}

// n floats, normal(0, sd), starting `offset` floats into an owned buffer (misaligned data).
struct Floats {
  std::vector<float> buf;
  float* p = nullptr;
  Floats(size_t n, std::mt19937& rng, float sd = 1.0f, size_t offset = 1) {
    buf.assign(n + offset + 1, 0.0f);
    p = buf.data() + offset;
    std::normal_distribution<float> dist(0.0f, sd);
    for (size_t i = 0; i < n; ++i) p[i] = dist(rng);
  }
};

}  // namespace qcoder::test
