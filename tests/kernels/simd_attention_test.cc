// Causal GQA attention on every compiled target against ref::attend_one_head, with key/value
// rows scattered in memory (one allocation per position, as a paged cache hands them out),
// and bitwise equality between decode (one query at a time) and prefill tiles.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "kernels/reference/ops.h"
#include "simd_test_util.h"

namespace qcoder {
namespace {

using test::for_each_target;

struct Kv {
  std::vector<std::unique_ptr<test::Floats>> k, v;
  std::vector<const float*> kp, vp;
  Kv(int64_t n_keys, int64_t row, std::mt19937& rng) {
    for (int64_t t = 0; t < n_keys; ++t) {
      k.push_back(std::make_unique<test::Floats>(row, rng, 1.0f, 1 + t % 5));
      v.push_back(std::make_unique<test::Floats>(row, rng, 1.0f, 2 + t % 3));
      kp.push_back(k.back()->p);
      vp.push_back(v.back()->p);
    }
  }
};

// Runs every item of one call, in reverse order (items are independent).
std::vector<float> run(const ops::AttentionShape& s, const float* q, int64_t n_q, int64_t n_keys, const Kv& kv) {
  std::vector<float> out(static_cast<size_t>(n_q * s.n_heads * s.head_dim), NAN);
  std::vector<float> scratch;
  for (int64_t i = ops::attention_items(s, n_q) - 1; i >= 0; --i)
    ops::attention_item(s, q, n_q, n_keys, kv.kp.data(), kv.vp.data(), out.data(), i, scratch);
  return out;
}

TEST(SimdAttention, MatchesReferenceAndDecodeEqualsPrefill) {
  struct Shape { int64_t nh, nkv, hd; };
  const Shape shapes[] = {{4, 2, 16}, {6, 2, 24}, {12, 1, 128}, {3, 3, 8}, {8, 4, 64}};
  for_each_target([&] {
    std::mt19937 rng(21);
    for (const Shape& sh : shapes) {
      const ops::AttentionShape s{sh.nh, sh.nkv, sh.hd, static_cast<float>(1.0 / std::sqrt(double(sh.hd)))};
      for (int64_t n_keys : {1, 5, 63, 64, 65, 150}) {
        Kv kv(n_keys, sh.nkv * sh.hd, rng);
        for (int64_t n_q : {int64_t{1}, int64_t{3}, int64_t{9}, n_keys}) {
          if (n_q > n_keys) continue;
          test::Floats q(static_cast<size_t>(n_q * sh.nh * sh.hd), rng, 2.0f);
          const std::vector<float> got = run(s, q.p, n_q, n_keys, kv);
          std::vector<float> scratch(static_cast<size_t>(n_keys)), want(static_cast<size_t>(sh.hd));
          for (int64_t i = 0; i < n_q; ++i) {
            const int64_t visible = n_keys - n_q + i + 1;
            for (int64_t h = 0; h < sh.nh; ++h) {
              const float* qv = q.p + (i * sh.nh + h) * sh.hd;
              const int64_t kvh = h / (sh.nh / sh.nkv);
              ref::attend_one_head(qv, kv.kp.data(), kv.vp.data(), kvh * sh.hd, visible, sh.hd, s.scale,
                                   scratch.data(), want.data());
              for (int64_t d = 0; d < sh.hd; ++d)
                ASSERT_NEAR(got[(i * sh.nh + h) * sh.hd + d], want[d], 2e-5)
                    << "nh " << sh.nh << " keys " << n_keys << " q " << n_q << " i " << i << " h " << h;
            }
            // The same query alone (a decode step at its position) gives the same bits.
            if (i % 4 != 0 && i != n_q - 1) continue;
            const std::vector<float> alone = run(s, q.p + i * sh.nh * sh.hd, 1, visible, kv);
            for (int64_t j = 0; j < sh.nh * sh.hd; ++j)
              ASSERT_EQ(alone[j], got[i * sh.nh * sh.hd + j]) << "decode vs prefill, query " << i;
          }
        }
      }
    }
  });
}

}  // namespace
}  // namespace qcoder
