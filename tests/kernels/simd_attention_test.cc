// Causal GQA attention on every compiled target against the scalar references, for every KV
// format (f32, bf16, q8, q4; kernels/kv_format.h), with key/value rows scattered in memory
// (one allocation per position, as a paged cache hands them out), and bitwise equality
// between decode (one query at a time) and prefill tiles.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kv_format.h"
#include "kernels/ops.h"
#include "kernels/reference/kv_ref.h"
#include "kernels/reference/ops.h"
#include "simd_test_util.h"

namespace qcoder {
namespace {

using test::for_each_target;

// Rows of n_keys positions stored in format f, each in its own unaligned allocation.
struct Kv {
  std::vector<std::vector<uint8_t>> k, v;
  std::vector<const uint8_t*> kp, vp;
  Kv(const KvFormat& f, int64_t n_keys, int64_t row, std::mt19937& rng) {
    const size_t bytes = static_cast<size_t>(kv_row_bytes(f, row));
    k.resize(static_cast<size_t>(n_keys));
    v.resize(static_cast<size_t>(n_keys));
    for (int64_t t = 0; t < n_keys; ++t) {
      const size_t off = 4 * static_cast<size_t>(1 + t % 3);  // f32 rows stay 4-byte aligned
      test::Floats kx(static_cast<size_t>(row), rng, 1.0f), vx(static_cast<size_t>(row), rng, 1.0f);
      k[t].assign(bytes + off + 4, 0);
      v[t].assign(bytes + off + 4, 0);
      ref::kv_encode_row(f, kx.p, row, k[t].data() + off);
      ref::kv_encode_row(f, vx.p, row, v[t].data() + off);
      kp.push_back(k[t].data() + off);
      vp.push_back(v[t].data() + off);
    }
  }
};

// Runs every item of one call, in reverse order (items are independent), then the combine
// items (split calls), also in reverse order.
std::vector<float> run(const ops::AttentionShape& s, const float* q, int64_t n_q, int64_t n_keys, const Kv& kv) {
  std::vector<float> out(static_cast<size_t>(n_q * s.n_heads * s.head_dim), NAN);
  std::vector<float> scratch;
  const ops::AttentionWork w = ops::attention_work(s, n_q, n_keys);
  std::vector<float> partials(static_cast<size_t>(w.partial_floats), NAN);
  for (int64_t i = w.items - 1; i >= 0; --i)
    ops::attention_item(s, q, n_q, n_keys, kv.kp.data(), kv.vp.data(), out.data(), partials.data(), i, scratch);
  for (int64_t i = w.combine_items - 1; i >= 0; --i)
    ops::attention_combine(s, n_q, n_keys, partials.data(), out.data(), i);
  return out;
}

void check_format(const KvFormat& f) {
  struct Shape { int64_t nh, nkv, hd; };
  const Shape shapes[] = {{4, 2, 16}, {6, 2, 24}, {12, 1, 128}, {3, 3, 8}, {8, 4, 64}, {6, 3, 32}};
  for_each_target([&] {
    std::mt19937 rng(21);
    for (const Shape& sh : shapes) {
      if (f.quantized() && sh.hd % f.group != 0) continue;
      ops::AttentionShape s{sh.nh, sh.nkv, sh.hd, static_cast<float>(1.0 / std::sqrt(double(sh.hd)))};
      s.kv = f;
      const int64_t row = sh.nkv * sh.hd;
      for (int64_t n_keys : {1, 5, 63, 64, 65, 150}) {
        Kv kv(f, n_keys, row, rng);
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
              ref::attend_one_head_kv(f, qv, kv.kp.data(), kv.vp.data(), row, kvh * sh.hd, visible,
                                      sh.hd, s.scale, scratch.data(), want.data());
              for (int64_t d = 0; d < sh.hd; ++d)
                ASSERT_NEAR(got[(i * sh.nh + h) * sh.hd + d], want[d], 2e-5)
                    << kv_format_name(f) << " nh " << sh.nh << " keys " << n_keys << " q " << n_q
                    << " i " << i << " h " << h;
            }
            // The same query alone (a decode step at its position) gives the same bits.
            if (i % 4 != 0 && i != n_q - 1) continue;
            const std::vector<float> alone = run(s, q.p + i * sh.nh * sh.hd, 1, visible, kv);
            for (int64_t j = 0; j < sh.nh * sh.hd; ++j)
              ASSERT_EQ(alone[j], got[i * sh.nh * sh.hd + j])
                  << kv_format_name(f) << " decode vs prefill, query " << i;
          }
        }
      }
    }
  });
}

TEST(SimdAttention, F32MatchesReferenceAndDecodeEqualsPrefill) { check_format(kv_format_from_bits(32)); }
TEST(SimdAttention, Bf16MatchesReferenceAndDecodeEqualsPrefill) { check_format(kv_format_from_bits(16)); }
TEST(SimdAttention, Q8MatchesReferenceAndDecodeEqualsPrefill) {
  check_format(kv_format_from_bits(8, 64));
  check_format(kv_format_from_bits(8, 32));
}
TEST(SimdAttention, Q4MatchesReferenceAndDecodeEqualsPrefill) {
  check_format(kv_format_from_bits(4, 64));
  check_format(kv_format_from_bits(4, 32));
}

// Contexts longer than one key chunk (ops::kAttnChunk): decode calls (few queries) run the
// chunks as separate items plus a combine pass, prefill tiles fold the chunks themselves. A
// query gets the same bits either way (and alone), and matches the reference.
TEST(SimdAttention, ChunkedDecodeEqualsPrefill) {
  for (const KvFormat& f : {kv_format_from_bits(32), kv_format_from_bits(16), kv_format_from_bits(4, 32)}) {
    for_each_target([&] {
      std::mt19937 rng(22);
      struct Shape { int64_t nh, nkv, hd; };
      for (const Shape& sh : {Shape{8, 4, 64}, Shape{6, 2, 32}}) {
        ops::AttentionShape s{sh.nh, sh.nkv, sh.hd, static_cast<float>(1.0 / std::sqrt(double(sh.hd)))};
        s.kv = f;
        const int64_t row = sh.nkv * sh.hd;
        for (int64_t n_keys : {ops::kAttnChunk + 1, 2 * ops::kAttnChunk + 76}) {
          Kv kv(f, n_keys, row, rng);
          for (int64_t n_q : {int64_t{1}, int64_t{2}, int64_t{8}, int64_t{9}, int64_t{80}}) {
            test::Floats q(static_cast<size_t>(n_q * sh.nh * sh.hd), rng, 2.0f);
            const std::vector<float> got = run(s, q.p, n_q, n_keys, kv);
            std::vector<float> scratch(static_cast<size_t>(n_keys)), want(static_cast<size_t>(sh.hd));
            for (int64_t i = 0; i < n_q; ++i) {
              if (i % 7 != 0 && i != n_q - 1) continue;
              const int64_t visible = n_keys - n_q + i + 1;
              for (int64_t h = 0; h < sh.nh; ++h) {
                ref::attend_one_head_kv(f, q.p + (i * sh.nh + h) * sh.hd, kv.kp.data(), kv.vp.data(), row,
                                        h / (sh.nh / sh.nkv) * sh.hd, visible, sh.hd, s.scale, scratch.data(),
                                        want.data());
                for (int64_t d = 0; d < sh.hd; ++d)
                  ASSERT_NEAR(got[(i * sh.nh + h) * sh.hd + d], want[d], 2e-5)
                      << kv_format_name(f) << " keys " << n_keys << " q " << n_q << " i " << i << " h " << h;
              }
              const std::vector<float> alone = run(s, q.p + i * sh.nh * sh.hd, 1, visible, kv);
              for (int64_t j = 0; j < sh.nh * sh.hd; ++j)
                ASSERT_EQ(alone[j], got[i * sh.nh * sh.hd + j])
                    << kv_format_name(f) << " keys " << n_keys << " q " << n_q << " decode vs prefill, query " << i;
            }
          }
        }
      }
    });
  }
}

// The float32 format reads rows in place: the same bits as the reference's attend_one_head on
// plain float rows (the format path changes nothing for f32).
TEST(SimdAttention, F32RowsAreUsedAsFloats) {
  std::mt19937 rng(3);
  const KvFormat f = kv_format_from_bits(32);
  Kv kv(f, 70, 2 * 32, rng);
  std::vector<const float*> kf, vf;
  for (int64_t t = 0; t < 70; ++t) {
    kf.push_back(reinterpret_cast<const float*>(kv.kp[t]));
    vf.push_back(reinterpret_cast<const float*>(kv.vp[t]));
  }
  test::Floats q(4 * 32, rng, 1.0f);
  std::vector<float> a(32), b(32), scratch(70);
  ref::attend_one_head(q.p, kf.data(), vf.data(), 32, 70, 32, 0.25f, scratch.data(), a.data());
  ref::attend_one_head_kv(f, q.p, kv.kp.data(), kv.vp.data(), 64, 32, 70, 32, 0.25f, scratch.data(), b.data());
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace qcoder
