// qcoder bench: prompt processing and generation speed, like llama-bench, with the machine's
// read bandwidth measured in the same run (interleaved with every decode measurement, since
// these VMs swing between runs) and decode stated as a fraction of that roofline.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "core/log.h"
#include "flags.h"
#include "model_options.h"
#include "kernels/ops.h"
#include "model/model.h"

namespace qcoder::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// All-thread read-only sweep over a buffer of at least 1 GiB: each thread streams its own
// contiguous share. Returns GB/s (10^9 bytes), the median of `passes` passes.
class BandwidthProbe {
 public:
  explicit BandwidthProbe(size_t bytes) : bytes_(bytes / 4096 * 4096) {
    mem_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes_)));
    if (!mem_) throw Error("bench: cannot allocate the bandwidth probe buffer");
    for (size_t i = 0; i < bytes_; i += 8) {
      const uint64_t v = i * 0x9E3779B97F4A7C15ull;
      std::memcpy(mem_.get() + i, &v, 8);
    }
  }
  double measure(ThreadPool& pool, int passes = 3) {
    std::vector<double> gbs;
    for (int p = 0; p < passes; ++p) {
      const int parts = pool.size();
      const size_t share = bytes_ / static_cast<size_t>(parts) / 256 * 256;
      std::vector<uint64_t> sums(static_cast<size_t>(parts));
      const auto t0 = Clock::now();
      pool.parallel_for(parts, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) sums[i] = ops::read_sweep(mem_.get() + i * share, share);
      });
      const double s = seconds_since(t0);
      for (uint64_t x : sums) sink_ ^= x;
      gbs.push_back(static_cast<double>(share * parts) / s / 1e9);
    }
    return median(gbs);
  }
  uint64_t sink() const { return sink_; }
  size_t size() const { return bytes_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  size_t bytes_;
  std::unique_ptr<uint8_t, Free> mem_;
  uint64_t sink_ = 0;
};

// Bytes read from memory per decoded token: the tensors a step touches (attention, router,
// the k routed experts, norms, one embedding row, the output head) plus the KV cache rows of
// `keys` positions (in the cache's format kv).
double bytes_per_token(const Model& m, double keys, const KvFormat& kv) {
  const ModelConfig& c = m.config();
  const ModelWeights& w = m.weights();
  double b = 0.0;
  for (const LayerWeights& l : w.layers) {
    b += static_cast<double>(l.q_proj.storage_bytes() + l.k_proj.storage_bytes() +
                             l.v_proj.storage_bytes() + l.o_proj.storage_bytes());
    b += 4.0 * static_cast<double>(l.input_norm.size() + l.post_norm.size() + l.q_norm.size() + l.k_norm.size());
    if (l.sparse) {
      b += static_cast<double>(l.router.storage_bytes());
      size_t e = 0;  // a bound expert (all have the same size)
      while (e + 1 < l.gate_proj.experts.size() && l.gate_proj.experts[e].rows == 0) ++e;
      b += static_cast<double>(c.num_experts_per_tok) *
           static_cast<double>(l.gate_proj.experts[e].storage_bytes() + l.up_proj.experts[e].storage_bytes() +
                               l.down_proj.experts[e].storage_bytes());
    } else {
      b += static_cast<double>(l.mlp_gate.storage_bytes() + l.mlp_up.storage_bytes() + l.mlp_down.storage_bytes());
    }
    b += keys * 2.0 * static_cast<double>(kv_row_bytes(c, kv));
  }
  b += static_cast<double>(w.lm_head.storage_bytes()) + 4.0 * static_cast<double>(w.final_norm.size());
  b += static_cast<double>(w.embed.storage_bytes()) / static_cast<double>(std::max<int64_t>(1, w.embed.rows));
  return b;
}

// Multiply-adds of one token's matrix products (no output head), times 2 = FLOPs.
double matmul_flops_per_token(const Model& m) {
  const ModelConfig& c = m.config();
  double macs = 0.0;
  for (const LayerWeights& l : m.weights().layers) {
    macs += static_cast<double>(l.q_proj.rows * l.q_proj.cols + l.k_proj.rows * l.k_proj.cols +
                                l.v_proj.rows * l.v_proj.cols + l.o_proj.rows * l.o_proj.cols);
    if (l.sparse)
      macs += static_cast<double>(l.router.rows * l.router.cols) +
              3.0 * static_cast<double>(c.num_experts_per_tok * c.moe_intermediate_size * c.hidden_size);
    else
      macs += 3.0 * static_cast<double>(c.intermediate_size * c.hidden_size);
  }
  return 2.0 * macs;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& x : ids) x = d(rng);
  return ids;
}

// Touches every page of every tensor so timings see resident weights (mmap faults them in
// lazily otherwise).
void prefault(const Model& m, ThreadPool& pool) {
  std::vector<std::pair<const uint8_t*, size_t>> spans;
  for (const auto& [name, info] : m.store().all()) spans.emplace_back(info->data, info->nbytes);
  std::vector<uint64_t> acc(static_cast<size_t>(pool.size()), 0);
  pool.parallel_items(static_cast<int64_t>(spans.size()), [&](int64_t i, int thread) {
    const auto [p, n] = spans[static_cast<size_t>(i)];
    uint64_t s = 0;
    for (size_t off = 0; off < n; off += 4096) s += p[off];
    acc[static_cast<size_t>(thread)] += s;
  });
  volatile uint64_t sink = 0;
  for (uint64_t x : acc) sink = sink + x;
}

struct DecodeResult {
  double tok_s = 0.0, bw_gbs = 0.0, bytes_per_token = 0.0, roofline = 0.0;
  double cpu_tok_s = 0.0;  // tokens per second of process CPU time, times the threads
};

double process_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// Decodes `steps` tokens one at a time after `depth` cached positions (filled with random
// keys/values, as allowed for the depth sweep) and pairs the rate with bandwidth sweeps run
// just before and after.
DecodeResult decode_run(const Model& m, ThreadPool& pool, BandwidthProbe& probe, int64_t depth,
                        int64_t steps, uint32_t seed, const KvFormat& kv) {
  const ModelConfig& c = m.config();
  KvCache cache(c, depth + steps + 1, kv);
  if (depth > 0) {
    cache.reserve_more(depth);
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> krow(static_cast<size_t>(cache.row_elems())), vrow(krow.size());
    for (int64_t l = 0; l < c.num_hidden_layers; ++l)
      for (int64_t t = 0; t < depth; ++t) {
        for (auto& x : krow) x = nd(rng);
        for (auto& x : vrow) x = nd(rng);
        cache.store(l, t, krow.data(), vrow.data());
      }
    cache.commit(depth);
  }
  const std::vector<int32_t> ids = random_ids(steps, c.vocab_size, seed + 1);
  const double bw_before = probe.measure(pool);
  const auto t0 = Clock::now();
  const double cpu0 = process_cpu_s();
  for (int64_t i = 0; i < steps; ++i) {
    SequenceInput in{std::span<const int32_t>(&ids[static_cast<size_t>(i)], 1), &cache, LogitsMode::kLast};
    SequenceOutput out;
    m.forward({&in, 1}, {&out, 1}, pool);
  }
  const double s = seconds_since(t0);
  const double cpu_s = process_cpu_s() - cpu0;
  const double bw_after = probe.measure(pool);
  DecodeResult r;
  r.tok_s = static_cast<double>(steps) / s;
  r.cpu_tok_s = static_cast<double>(steps) / cpu_s * pool.size();
  r.bw_gbs = 0.5 * (bw_before + bw_after);
  // Step i reads depth + i + 1 key/value rows per layer.
  r.bytes_per_token = bytes_per_token(m, static_cast<double>(depth) + 0.5 * static_cast<double>(steps + 1), kv);
  r.roofline = r.tok_s * r.bytes_per_token / (r.bw_gbs * 1e9);
  return r;
}

std::vector<int64_t> parse_depths(const std::string& text) {
  std::vector<int64_t> out;
  if (text.empty()) return out;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    char* end = nullptr;
    const long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || v < 0) throw Error("--depths: bad entry \"" + part + "\"");
    out.push_back(v);
  }
  return out;
}

}  // namespace

int run_bench(int argc, char** argv) {
  std::string model_dir, depths_text;
  int64_t threads = 0, reps = 3, depth_steps = 16, sweep_mib = 1024, kv_bits = 16;
  int64_t gen = 128;
  bool json = false, skip_pp = false;
  FlagSet flags("bench",
                "Measures prompt processing (pp512: one 512-token prompt) and generation (tg128:\n"
                "128 tokens one at a time from an empty context) in tokens/s, medians of -r runs.\n"
                "A read-only all-thread sweep over >= 1 GiB runs before and after every decode\n"
                "run; decode_roofline_pct is the median over runs of tok/s x bytes read per token\n"
                "/ bandwidth. Bytes per token count attention, router, the k routed experts, norms,\n"
                "one embedding row, the output head and the KV rows read (in the --kv-bits format).");
  flags.add("-m,--model", &model_dir, "model folder", true);
  flags.add("--json", &json, "print one JSON object");
  flags.add("--depths", &depths_text, "also decode after N cached tokens (comma-separated, random KV)");
  flags.add("--depth-tokens", &depth_steps, "tokens decoded per depth");
  flags.add("-r,--repetitions", &reps, "runs of each measurement");
  flags.add("--sweep-mib", &sweep_mib, "bandwidth sweep size in MiB (at least 1024)");
  const ModelOptions model_options(flags);
  flags.add("-t,--threads", &threads, "threads (0 = all cores)");
  flags.add("--kv-bits", &kv_bits, "KV cache format: 16 = bf16 (default), 8, 4 (quantized), 32 = float32");
  flags.add("--skip-pp", &skip_pp, "decode only (pp512 is reported as 0)");
  flags.add("-n,--gen", &gen, "tokens decoded per decode run (default 128: tg128)");
  if (!flags.parse(argc, argv)) return 0;
  const KvFormat kv = kv_format_from_bits(kv_bits);
  if (reps < 1) throw Error("-r must be >= 1");
  if (gen < 1) throw Error("-n must be >= 1");
  if (sweep_mib < 1024) throw Error("--sweep-mib must be at least 1024 (1 GiB)");
  const std::vector<int64_t> depths = parse_depths(depths_text);
  constexpr int64_t kPrompt = 512;
  const int64_t kGen = gen;

  ThreadPool pool(static_cast<int>(threads));
  const auto t_load = Clock::now();
  auto model = Model::load(model_dir, model_options.rope());
  model->set_fast_numerics(model_options.fast());
  prefault(*model, pool);
  const double load_s = seconds_since(t_load);
  const ModelConfig& c = model->config();
  BandwidthProbe probe(static_cast<size_t>(sweep_mib) << 20);
  QCODER_INFO("bench: " << model_dir << ", " << pool.size() << " threads, kernels " << ops::active_target());

  // Warm-up: a short prompt (touches the code paths and most experts).
  {
    KvCache cache(model->config(), 64, kv);
    const std::vector<int32_t> ids = random_ids(32, c.vocab_size, 99);
    SequenceInput in{ids, &cache, LogitsMode::kLast};
    SequenceOutput out;
    model->forward({&in, 1}, {&out, 1}, pool);
  }

  std::vector<double> pp, tg, bw, roof;
  for (int64_t r = 0; r < reps; ++r) {
    KvCache cache(c, kPrompt, kv);
    const std::vector<int32_t> ids = random_ids(kPrompt, c.vocab_size, static_cast<uint32_t>(r + 1));
    SequenceInput in{ids, &cache, LogitsMode::kLast};
    SequenceOutput out;
    if (!skip_pp) {
      const auto t0 = Clock::now();
      model->forward({&in, 1}, {&out, 1}, pool);
      pp.push_back(static_cast<double>(kPrompt) / seconds_since(t0));
    } else {
      pp.push_back(0.0);
    }
    const DecodeResult d = decode_run(*model, pool, probe, 0, kGen, static_cast<uint32_t>(100 + r), kv);
    tg.push_back(d.tok_s);
    bw.push_back(d.bw_gbs);
    roof.push_back(d.roofline);
    QCODER_INFO("run " << r + 1 << ": pp512 " << pp.back() << " tok/s, tg128 " << d.tok_s << " tok/s, bw "
                       << d.bw_gbs << " GB/s, roofline " << 100 * d.roofline << "%, "
                       << d.cpu_tok_s << " tok/s per CPU-second x threads");
  }
  // FLOPs of one pp512: matrix products of 512 tokens, causal attention (QK and PV) and one
  // output-head row.
  double attn_macs = 0.0;
  for (int64_t i = 0; i < kPrompt; ++i)
    attn_macs += 2.0 * static_cast<double>((i + 1) * c.num_attention_heads * c.head_dim);
  const double pp_flops = static_cast<double>(kPrompt) * matmul_flops_per_token(*model) +
                          2.0 * attn_macs * static_cast<double>(c.num_hidden_layers) +
                          2.0 * static_cast<double>(model->weights().lm_head.rows * c.hidden_size);

  std::vector<std::pair<int64_t, DecodeResult>> at_depth;
  for (int64_t d : depths) at_depth.emplace_back(d, decode_run(*model, pool, probe, d, depth_steps, 7, kv));

  // Peak resident memory of the engine: the process peak less the probe buffer (resident
  // from before the first measurement to the end, so it is part of the peak).
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const int64_t peak_rss = static_cast<int64_t>(ru.ru_maxrss) * 1024 - static_cast<int64_t>(probe.size());
  const double pp_med = median(pp);
  nlohmann::ordered_json j;
  j["pp512_tok_s"] = pp_med;
  j["tg128_tok_s"] = median(tg);
  j["read_bw_gbs"] = median(bw);
  j["decode_roofline_pct"] = 100.0 * median(roof);
  j["prefill_gflops"] = pp_med / static_cast<double>(kPrompt) * pp_flops / 1e9;
  j["peak_rss_bytes"] = peak_rss;
  j["load_s"] = load_s;
  j["mode"] = model_options.mode_name();
  j["kv_bits"] = kv_bits;
  if (!depths.empty()) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& [d, r] : at_depth)
      arr.push_back({{"depth", d}, {"tg_tok_s", r.tok_s}, {"read_bw_gbs", r.bw_gbs},
                     {"decode_roofline_pct", 100.0 * r.roofline}, {"bytes_per_token", r.bytes_per_token}});
    j["depths"] = arr;
  }
  // Routed-expert use over the whole run (prompt, decode and depth runs), per decoder layer:
  // distinct experts chosen and the share of uses that went to the k most used (issue 8).
  const ExpertUsage& usage = model->expert_usage();
  const int64_t top = std::max<int64_t>(model->config().num_experts_per_tok, 1);
  nlohmann::ordered_json use = nlohmann::ordered_json::array();
  for (int64_t l = 0; l < usage.layers(); ++l) {
    const ExpertUseSummary u = summarize_layer(usage, l, top);
    if (u.total == 0) continue;
    use.push_back({{"layer", l}, {"experts_used", u.used}, {"routed", u.total}, {"top_k_share", u.top_share}});
  }
  j["expert_use"] = use;
  if (json) {
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::cout << std::fixed << std::setprecision(2);
  std::cout << "model " << model_dir << " | " << pool.size() << " threads | kernels " << ops::active_target()
            << " | mode " << model_options.mode_name() << "\n";
  std::cout << "pp512              " << pp_med << " tok/s  (" << j["prefill_gflops"].get<double>() << " GFLOP/s)\n";
  std::cout << "tg128              " << median(tg) << " tok/s  (" << 100.0 * median(roof) << "% of "
            << median(bw) << " GB/s read bandwidth; " << bytes_per_token(*model, 64.5, kv) / 1e6
            << " MB read per token)\n";
  for (const auto& [d, r] : at_depth)
    std::cout << "tg @ depth " << std::setw(6) << d << " " << r.tok_s << " tok/s  (" << 100.0 * r.roofline
              << "% of " << r.bw_gbs << " GB/s; " << r.bytes_per_token / 1e6 << " MB per token)\n";
  if (!use.empty()) {
    double lo = 1.0, hi = 0.0;
    int64_t used_min = usage.experts();
    for (const auto& u : use) {
      lo = std::min(lo, u["top_k_share"].get<double>());
      hi = std::max(hi, u["top_k_share"].get<double>());
      used_min = std::min(used_min, u["experts_used"].get<int64_t>());
    }
    std::cout << "expert use         >= " << used_min << " of " << usage.experts() << " experts chosen per layer; the "
              << top << " most used took " << 100.0 * lo << "-" << 100.0 * hi << "% of routed tokens\n";
  }
  std::cout << "load " << load_s << " s, peak RSS " << static_cast<double>(peak_rss) / 1e9 << " GB"
            << std::endl;
  return 0;
}

}  // namespace qcoder::cli
