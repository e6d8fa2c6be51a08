// Kernel micro-benchmarks for docs/PERFORMANCE.md (not a test: timings only).
//   qcoder_micro_bench [threads]
// 1. Cost of an empty parallel region of the thread pool.
// 2. 4-bit g64 matrix-vector product (1 and 4 tokens) over a 256 MiB matrix, against a read
//    sweep of the same bytes run right before and after (the kernel's share of the roofline);
//    and on a cache-resident matrix for 1, 2, 4 and 7 tokens (the kernel's own speed); and
//    one thread over expert-sized pieces, with and without the prefetch continuation.
// 3. 4-bit g64 matrix-matrix products: an expert (768 x 2048, 32 tokens) and a projection
//    (2048 x 2048, 512 tokens), in GMAC/s, with 16-bit and 8-bit (--fast) activations.
//    `qcoder_micro_bench [threads] gemm` runs only this part.
// 4. Decode attention at 32K context (bf16 KV), streaming and cache-resident.
// 5. KV row encoding (KvCache::store): the scalar reference against the SIMD encoder, per
//    format, one thread. `qcoder_micro_bench [threads] kv-encode` runs only this part.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "kernels/kv_format.h"
#include "kernels/qmatrix.h"
#include "kernels/reference/kv_ref.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
// Process CPU seconds: on a shared machine, bytes per CPU-second (divided by the thread count)
// is the rate while the threads actually run, which the other load distorts far less.
double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Q4 {
  std::vector<uint8_t> data, scales, biases;
  qcoder::QMatrix m;
  Q4(int64_t rows, int64_t cols, std::mt19937& rng) {
    data.resize(static_cast<size_t>(rows * cols / 2));
    for (auto& b : data) b = static_cast<uint8_t>(rng());
    scales.assign(static_cast<size_t>(rows * cols / 64 * 2), 0);
    biases = scales;
    for (size_t i = 0; i < scales.size(); i += 2) {
      scales[i + 1] = 0x3c;  // bf16 ~0.0117
      biases[i + 1] = 0xbe;  // bf16 ~-0.125
    }
    m.spec = {qcoder::QuantMode::kAffine, 4, 64};
    m.rows = rows;
    m.cols = cols;
    m.dtype = qcoder::DType::kU32;
    m.data = data.data();
    m.row_bytes = static_cast<size_t>(cols / 2);
    m.scales = scales.data();
    m.biases = biases.data();
    m.scales_row_bytes = m.biases_row_bytes = static_cast<size_t>(cols / 64 * 2);
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void matmul(qcoder::ThreadPool& pool, const qcoder::QMatrix& m, const qcoder::ops::PreparedActs& a,
            int64_t n, float* y) {
  pool.parallel_items((m.rows + 15) / 16, [&](int64_t i, int) {
    qcoder::ops::matmul(m, a, nullptr, n, y, m.rows, i * 16, std::min(m.rows, i * 16 + 16));
  });
}

// 5. Encoding 2048 rows of 4 KV heads x 128 (Qwen3-30B-A3B; 4 MiB of float32 in, so it
// sits in L2/L3 like the few rows a decode step stores), in GB/s of float32 input, scalar and
// SIMD alternating within each of 9 repetitions (both see the same machine load).
void kv_encode_bench(std::mt19937& rng) {
  const int64_t rows = 2048, n = 4 * 128;
  std::vector<float> x(static_cast<size_t>(rows * n));
  for (auto& v : x) v = std::normal_distribution<float>()(rng);
  for (const int bits : {16, 8, 4}) {
    const qcoder::KvFormat f = qcoder::kv_format_from_bits(bits, 64);
    const size_t rb = static_cast<size_t>(qcoder::kv_row_bytes(f, n));
    std::vector<uint8_t> out(rb * static_cast<size_t>(rows));
    std::vector<double> ref_gbs, simd_gbs;
    const double bytes = 4.0 * static_cast<double>(rows * n);
    for (int rep = 0; rep < 9; ++rep)
      for (const bool simd : {false, true}) {
        const auto t = Clock::now();
        for (int64_t r = 0; r < rows; ++r) {
          const float* src = x.data() + r * n;
          uint8_t* dst = out.data() + static_cast<size_t>(r) * rb;
          if (simd)
            qcoder::ops::kv_encode_row(f, src, n, dst);
          else
            qcoder::ref::kv_encode_row(f, src, n, dst);
        }
        (simd ? simd_gbs : ref_gbs).push_back(bytes / since(t) / 1e9);
      }
    std::printf("kv encode %s: scalar %.2f GB/s, SIMD %.2f GB/s of float32 in: %.1fx (median of 9)\n",
                qcoder::kv_format_name(f).c_str(), median(ref_gbs), median(simd_gbs),
                median(simd_gbs) / median(ref_gbs));
  }
}

// Matrix-matrix products (an expert's share of a prefill batch; a dense 512-token prompt) with
// 16-bit activations (default) and 8-bit ones (--fast), in GMAC/s over all threads.
void gemm_bench(qcoder::ThreadPool& pool, std::mt19937& rng) {
  for (const int bits : {16, 8})
    for (const auto& [rows, cols, n] : {std::tuple<int64_t, int64_t, int64_t>{768, 2048, 32}, {2048, 2048, 512}}) {
      Q4 w(rows, cols, rng);
      w.m.act_bits = bits;
      std::vector<float> x(static_cast<size_t>(n * cols)), y(static_cast<size_t>(n * rows));
      for (auto& v : x) v = std::normal_distribution<float>()(rng);
      qcoder::ops::PreparedActs a;
      qcoder::ops::prepare_acts(w.m, x.data(), n, a);
      std::vector<double> gmacs;
      for (int rep = 0; rep < 7; ++rep) {
        const auto t = Clock::now();
        matmul(pool, w.m, a, n, y.data());
        gmacs.push_back(static_cast<double>(rows * cols * n) / since(t) / 1e9);
      }
      std::printf("4-bit matmul %lldx%lld, %lld tokens, int%d activations: %.1f GMAC/s (median of 7)\n",
                  static_cast<long long>(rows), static_cast<long long>(cols), static_cast<long long>(n), bits,
                  median(gmacs));
    }
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 0;
  std::mt19937 rng(1);
  if (argc > 2 && std::strcmp(argv[2], "kv-encode") == 0) {
    std::printf("kernels %s, 1 thread\n", qcoder::ops::active_target().c_str());
    kv_encode_bench(rng);
    return 0;
  }
  qcoder::ThreadPool pool(threads);
  std::printf("kernels %s, %d threads\n", qcoder::ops::active_target().c_str(), pool.size());
  if (argc > 2 && std::strcmp(argv[2], "gemm") == 0) {
    gemm_bench(pool, rng);
    return 0;
  }

  // 1. Empty regions.
  {
    std::vector<double> us;
    for (int rep = 0; rep < 5; ++rep) {
      const int n = 20000;
      const auto t = Clock::now();
      for (int i = 0; i < n; ++i) pool.parallel_for(pool.size(), [](int64_t, int64_t) {});
      us.push_back(since(t) / n * 1e6);
    }
    std::printf("empty parallel region: %.2f us (median of 5 x 20000)\n", median(us));
  }

  // 2. Matrix-vector (1 token: decode; 4 tokens: a routed expert's rows when 4 sequences
  // decode together) vs read sweep over the same bytes.
  for (const int64_t nt : {1, 4}) {
    const int64_t rows = 16384 * 8, cols = 4096;  // 256 MiB of codes + 16 MiB of scales/biases
    Q4 w(rows, cols, rng);
    std::vector<float> x(static_cast<size_t>(nt * cols)), y(static_cast<size_t>(nt * rows));
    for (auto& v : x) v = std::normal_distribution<float>()(rng);
    qcoder::ops::PreparedActs a;
    qcoder::ops::prepare_acts(w.m, x.data(), nt, a);
    const double bytes = static_cast<double>(w.m.storage_bytes());
    std::vector<double> ratio, mv_gbs, sw_gbs, cratio, cmv, csw;
    for (int rep = 0; rep < 7; ++rep) {
      auto t = Clock::now();
      double c0 = cpu_now();
      uint64_t sink = 0;
      pool.parallel_for(pool.size(), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const size_t share = w.data.size() / static_cast<size_t>(pool.size()) / 256 * 256;
          sink ^= qcoder::ops::read_sweep(w.data.data() + i * share, share);
        }
      });
      const double sweep = static_cast<double>(w.data.size()) / since(t) / 1e9;
      const double csweep = static_cast<double>(w.data.size()) / (cpu_now() - c0) / 1e9 * pool.size();
      t = Clock::now();
      c0 = cpu_now();
      matmul(pool, w.m, a, nt, y.data());
      const double mv = bytes / since(t) / 1e9;
      const double cm = bytes / (cpu_now() - c0) / 1e9 * pool.size();
      cmv.push_back(cm);
      csw.push_back(csweep);
      cratio.push_back(cm / csweep);
      mv_gbs.push_back(mv);
      sw_gbs.push_back(sweep);
      ratio.push_back(mv / sweep);
      if (sink == 42) std::printf(" ");
    }
    std::printf("4-bit matvec 131072x4096, %lld token(s): %.1f GB/s vs read sweep %.1f GB/s: %.0f%% (median of paired ratios)\n",
                static_cast<long long>(nt), median(mv_gbs), median(sw_gbs), 100 * median(ratio));
    std::printf("  per CPU-second x threads: %.1f GB/s vs %.1f GB/s: %.0f%%\n", median(cmv), median(csw),
                100 * median(cratio));
  }

  // 2b. Matrix-vector on a cache-resident matrix (512 x 2048, 0.6 MB) for 1-7 tokens: the
  // kernel's own speed without memory stalls, per thread (CPU time), in weight bytes; with
  // int16 activations, then 8-bit ones (--fast).
  for (const int bits : {16, 8})
  for (const int64_t nt : {1, 2, 4, 7}) {
    const int64_t rows = 512, cols = 2048;
    Q4 w(rows, cols, rng);
    w.m.act_bits = bits;
    std::vector<float> x(static_cast<size_t>(nt * cols)), y(static_cast<size_t>(nt * rows));
    for (auto& v : x) v = std::normal_distribution<float>()(rng);
    qcoder::ops::PreparedActs a;
    qcoder::ops::prepare_acts(w.m, x.data(), nt, a);
    std::vector<double> gbs;
    for (int rep = 0; rep < 7; ++rep) {
      const double c0 = cpu_now();
      for (int i = 0; i < 400; ++i)
        for (int64_t p = 0; p < rows; p += 16) qcoder::ops::matmul(w.m, a, nullptr, nt, y.data(), rows, p, p + 16);
      gbs.push_back(400.0 * static_cast<double>(w.m.storage_bytes()) / (cpu_now() - c0) / 1e9);
    }
    std::printf("4-bit matvec 512x2048 cache-resident, int%d activations, %lld token(s), one thread: %.1f GB/s of weights per CPU-second\n",
                bits, static_cast<long long>(nt), median(gbs));
  }

  // 2c. One thread, 4-bit matvec over 240 MB as one call, and as expert-sized pieces (768 rows
  // of 2048) in shuffled order, one call each, without and with the prefetch continuation
  // (ops::matmul's next_rows): what a call's cold start costs, and what carrying the
  // prefetches into the next call recovers.
  {
    const int64_t cols = 2048, piece = 768, pieces = 240;
    Q4 w(piece * pieces, cols, rng);
    std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(w.m.rows));
    for (auto& v : x) v = std::normal_distribution<float>()(rng);
    qcoder::ops::PreparedActs a;
    qcoder::ops::prepare_acts(w.m, x.data(), 1, a);
    std::vector<int64_t> order(static_cast<size_t>(pieces));
    for (int64_t i = 0; i < pieces; ++i) order[static_cast<size_t>(i)] = i;
    std::shuffle(order.begin(), order.end(), rng);
    const double bytes = static_cast<double>(w.m.storage_bytes());
    std::vector<double> one, cold, hinted;
    for (int rep = 0; rep < 7; ++rep) {
      auto t = Clock::now();
      qcoder::ops::matmul(w.m, a, nullptr, 1, y.data(), w.m.rows, 0, w.m.rows);
      one.push_back(bytes / since(t) / 1e9);
      for (const bool hint : {false, true}) {
        t = Clock::now();
        for (size_t i = 0; i < order.size(); ++i) {
          const uint8_t* next = hint && i + 1 < order.size()
                                    ? w.m.data + static_cast<size_t>(order[i + 1] * piece) * w.m.row_bytes
                                    : nullptr;
          qcoder::ops::matmul(w.m, a, nullptr, 1, y.data(), w.m.rows, order[i] * piece, order[i] * piece + piece, next);
        }
        (hint ? hinted : cold).push_back(bytes / since(t) / 1e9);
      }
    }
    std::printf("4-bit matvec, one thread, 240 MB: one call %.1f GB/s; 768-row pieces shuffled %.1f GB/s, "
                "with the prefetch continuation %.1f GB/s (medians of 7)\n",
                median(one), median(cold), median(hinted));
  }

  // 3. Matrix-matrix.
  gemm_bench(pool, rng);
  // 4. Decode attention at 32K context (Qwen3-30B-A3B heads: 32 query heads, 4 KV heads of
  // 128; bf16 rows, one layer), all threads through the flash-decoding items: the KV bytes
  // read per second, with rows spread over 64 MiB (streaming) and with every position pointing
  // into the same 512 rows (cache-resident: the kernel's own speed).
  {
    const int64_t n_keys = 32768, nh = 32, nkv = 4, hd = 128, row = nkv * hd;
    qcoder::ops::AttentionShape s{nh, nkv, hd, 0.088f};
    s.kv = qcoder::kv_format_from_bits(16);
    const size_t row_bytes = static_cast<size_t>(row) * 2;
    std::vector<uint8_t> kd(row_bytes * static_cast<size_t>(n_keys)), vd(kd.size());
    for (size_t i = 0; i < kd.size(); i += 2) {  // N(0, 1) values as bf16
      const uint16_t k = qcoder::f32_to_bf16(std::normal_distribution<float>()(rng));
      const uint16_t v = qcoder::f32_to_bf16(std::normal_distribution<float>()(rng));
      std::memcpy(&kd[i], &k, 2);
      std::memcpy(&vd[i], &v, 2);
    }
    std::vector<float> q(static_cast<size_t>(nh * hd)), out(q.size());
    for (auto& v : q) v = std::normal_distribution<float>()(rng);
    for (const bool resident : {false, true}) {
      std::vector<const uint8_t*> kp(static_cast<size_t>(n_keys)), vp(kp.size());
      for (int64_t t = 0; t < n_keys; ++t) {
        const size_t at = static_cast<size_t>(resident ? t % 512 : t) * row_bytes;
        kp[static_cast<size_t>(t)] = kd.data() + at;
        vp[static_cast<size_t>(t)] = vd.data() + at;
      }
      const qcoder::ops::AttentionWork w = qcoder::ops::attention_work(s, 1, n_keys);
      std::vector<float> partials(static_cast<size_t>(w.partial_floats));
      std::vector<std::vector<float>> scratch(static_cast<size_t>(pool.size()));
      std::vector<double> gbs, cgbs;
      for (int rep = 0; rep < 7; ++rep) {
        const auto t = Clock::now();
        const double c0 = cpu_now();
        pool.parallel_items(w.items, [&](int64_t i, int th) {
          qcoder::ops::attention_item(s, q.data(), 1, n_keys, kp.data(), vp.data(), out.data(), partials.data(), i,
                                      scratch[static_cast<size_t>(th)]);
        });
        pool.parallel_items(w.combine_items, [&](int64_t i, int) {
          qcoder::ops::attention_combine(s, 1, n_keys, partials.data(), out.data(), i);
        });
        const double bytes = 2.0 * static_cast<double>(row_bytes) * static_cast<double>(n_keys);
        gbs.push_back(bytes / since(t) / 1e9);
        cgbs.push_back(bytes / (cpu_now() - c0) / 1e9 * pool.size());
      }
      std::printf("decode attention 32K bf16 (%s): %.1f GB/s of KV (%.2f ms per layer), %.1f GB/s per CPU-second x threads\n",
                  resident ? "cache-resident" : "streaming", median(gbs),
                  2.0 * static_cast<double>(row_bytes * n_keys) / median(gbs) / 1e6, median(cgbs));
    }
  }

  // 5. KV row encoding.
  kv_encode_bench(rng);
  return 0;
}
