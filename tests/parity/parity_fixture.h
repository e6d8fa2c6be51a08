// Reads a model parity fixture (tests/reference/FIXTURES.md) and compares qcoder against the
// float64 reference and mlx-lm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kv_format.h"

namespace qcoder::parity {

struct PromptRef {
  std::string key;
  std::vector<int32_t> ids, greedy, positions;
  std::vector<float> greedy_margin;
  std::vector<float> mlx_logits, f64_logits;  // [R, V]
  std::vector<int32_t> mlx_routes, f64_routes;  // [layers, R, k]
};

struct FixtureRef {
  std::string dir, name, compute_dtype;
  int64_t vocab = 0, layers = 0, top_k = 0;
  std::vector<PromptRef> prompts;
};

FixtureRef load_fixture(const std::string& dir);

// The float64 reference with its keys/values stored in a KV cache format (bf16, q8, q4: post-RoPE
// keys and values rounded as qcoder's cache stores them, everything else float64), at the same
// checked rows: ref/kv_<format>.safetensors written by tests/reference/make_kv_format_refs.py.
struct KvReference {
  std::string format;
  std::vector<std::vector<float>> logits;    // per prompt: [R, V]
  std::vector<std::vector<int32_t>> routes;  // per prompt: [layers, R, k]
};
// False when the fixture has no ref/kv_<format>.safetensors; throws when it is malformed.
bool load_kv_reference(const FixtureRef& fx, const std::string& format, KvReference* out);

// Statistics of one fixture, in units of the per-row standard deviation of the f64 logits.
struct ParityStats {
  double max_err_f64 = 0, mean_err_f64 = 0;   // qcoder vs float64
  double max_err_mlx = 0, mean_err_mlx = 0;   // qcoder vs mlx-lm
  double mlx_max_err_f64 = 0, mlx_mean_err_f64 = 0;  // mlx-lm vs float64
  int64_t rows = 0, top1_agree_mlx = 0;
  int64_t top1_agree_f64 = 0, mlx_top1_agree_f64 = 0;  // rows whose argmax is f64's (qcoder, mlx-lm)
  // Rows whose f64 top-2 margin exceeds twice mlx-lm's error on the contenders (mlx's and
  // f64's top two tokens), so that mlx-lm's bf16 rounding cannot swap them, and of those the
  // rows where qcoder's argmax is f64's.
  int64_t decisive_rows = 0, decisive_agree = 0;
  std::vector<int64_t> route_flips_mlx, route_flips_f64;  // per layer, rows differing
  int64_t greedy_steps = 0, greedy_compared = 0, greedy_agree = 0;
};

// Runs qcoder on every prompt of the fixture, with KV cache format kv (and --fast numerics when
// `fast`), and gathers the statistics.
ParityStats run_parity(const FixtureRef& fx, int threads, KvFormat kv = {}, bool fast = false);

std::string format_stats(const FixtureRef& fx, const ParityStats& s);

// Committed fixture folders under tests/fixtures/models, sorted.
std::vector<std::string> committed_fixture_dirs();
// Folders listed under $QCODER_LIVE_FIXTURES (empty when unset).
std::vector<std::string> live_fixture_dirs();

}  // namespace qcoder::parity
