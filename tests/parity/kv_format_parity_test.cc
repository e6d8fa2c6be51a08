// The KV cache formats against the float64 reference, on every committed parity fixture
// (tests/reference/FIXTURES.md). The whole forward pass runs with the cache in the format; its
// keys/values are what attention reads. For each fixture and format (f32, bf16 = the default,
// q8 and q4 with groups of 64) one line goes to <build>/kv-parity-report.txt and stdout:
// max/mean |qcoder - f64| in units of the f64 row's sigma, and greedy agreement: at each
// continuation step, qcoder's argmax against the float64 model's, over all steps and over the
// steps whose f64 top-2 margin exceeds 0.25 sigma, with the largest margin of a flipped step.
// Random-weight fixtures have near-ties (in the next token and in the expert routing) that any
// rounding flips, so greedy identity is asked for above a margin.
//
// Bounds (issue 8, item 2; the measured values are in docs/KV_CACHE.md):
// - f32: the engine core's gate, max <= 5e-3 sigma (as parity_test.cc).
// - bf16 (default): greedy output identical to the float64 model's on every step with a margin
//   above 0.25 sigma; on the bf16 fixtures, mean error no larger than mlx-lm's own (bf16
//   activations and a bf16 cache). bf16 storage alone costs ~1e-2 sigma against the float64
//   reference that keeps K/V in float64, so the engine core's gate is checked against a float64
//   reference that stores them as the cache does (ref/kv_<format>.safetensors,
//   tests/reference/make_kv_format_refs.py; one "kv gate" line per fixture and format):
//   - float32-activation fixtures (float weights, mxfp8): max <= 5e-3 sigma and greedy equal on
//     every step with a margin above 1e-2 sigma, for bf16, q8 and q4 alike;
//   - int16-activation fixtures (affine, mxfp4, nvfp4), bf16: the activation rounding (~1e-5
//     relative) moves some keys/values across a bf16 rounding boundary, ~10x qcoder's f32-cache
//     error (tests/reference/kv_gate_diagnosis.py reproduces it in float64). On the rows whose
//     experts are the reference's: mean <= 5e-3, max <= kIntActsMaxErr, greedy equal above
//     1e-2 sigma; routing flips on at most 5% of the rows. q8/q4 there: no reference committed.
// - q8: greedy output identical on every step with a margin above kQ8MinMargin, mean error
//   <= kQ8MaxMeanErr. Measured: 4 of ~730 steps with margins in (0.25, 0.63] sigma flip, each
//   with an expert-routing flip nearby; none above.
// - q4: mean error <= kQ4MaxMeanErr, greedy agreement >= kQ4MinAgree above 0.25 sigma.
// - Peer: mlx-lm's own QuantizedKVCache (kv_bits 8 and 4, group 64) on the same rows,
//   summarised in ref/kv_peer.json by tests/reference/make_kv_peer_refs.py. qcoder's q8/q4 mean
//   error vs f64 must be within kPeerRatio of mlx-lm's (measured ratios 0.44 - 1.18 for q8,
//   0.90 - 1.06 for q4: the same quantization rule; the rest is routing-flip noise, a single
//   flipped row moving a fixture's mean by ~1e-2 sigma). Top-1 agreement with mlx-lm is reported.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "model/model.h"
#include "parity/parity_fixture.h"

namespace qcoder::parity {
namespace {

constexpr double kMinMargin = 0.25;     // sigma: steps with a smaller f64 margin are not compared
constexpr double kQ8MinMargin = 0.75;   // sigma (largest flipped margin measured: 0.63)
constexpr double kQ8MaxMeanErr = 0.15;  // sigma (measured <= 0.094)
constexpr double kQ4MaxMeanErr = 1.0;   // sigma (measured <= 0.83)
constexpr double kQ4MinAgree = 0.80;    // (measured >= 0.84)
constexpr double kPeerRatio = 1.25;
// The engine core's gate (parity_test.cc), held by every format whose storage the float64
// reference models (ref/kv_<format>.safetensors), and the greedy margin above which a step is
// compared with that reference: twice the gate, since an error <= kGate on every logit can swap
// only tokens closer than 2 * kGate.
constexpr double kGate = 5e-3;           // sigma
constexpr double kGateMinMargin = 1e-2;  // sigma
// bf16 cache, integer-activation fixtures, rows whose experts are the reference's (measured
// <= 8.8e-3; the float64 model with int16 activations: <= 7.9e-3).
constexpr double kIntActsMaxErr = 1e-2;  // sigma

// Whether the fixture's weights take the integer product path (int16 activations: affine,
// mxfp4, nvfp4; kernels/ops.h PreparedActs) rather than float32 activations (float weights,
// mxfp8).
bool integer_activations(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "config.json");
  const nlohmann::json c = nlohmann::json::parse(in);
  if (!c.contains("quantization")) return false;
  return c.at("quantization").value("mode", std::string("affine")) != "mxfp8";
}

struct KvStats {
  double max_err = 0, mean_err = 0;
  int64_t rows = 0, steps = 0, steps_agree = 0, compared = 0, agree = 0;
  double worst_flip_margin = 0;  // largest f64 margin (sigma) among all disagreeing steps
  // Disagreeing steps with a margin above m.
  int64_t flips_above(double m) const {
    int64_t n = 0;
    for (double x : flip_margins) n += x > m;
    return n;
  }
  std::vector<double> flip_margins;
  std::vector<int64_t> argmax_rows;  // per checked row, prompts in order
  // Against the storage-modelled float64 reference (ref/kv_<format>.safetensors), when present.
  bool has_ref = false;
  double ref_max_err = 0, ref_mean_err = 0, ref_worst_flip_margin = 0;
  int64_t ref_steps = 0, ref_compared = 0, ref_agree = 0;
  // The same over the rows whose experts equal the reference's in every layer (a routing flip
  // is a discrete decision on a near-tied router, not a continuous error).
  double ref_max_err_same_routes = 0, ref_mean_err_same_routes = 0;
  int64_t ref_rows_route_flipped = 0, ref_compared_same_routes = 0, ref_agree_same_routes = 0;
  std::vector<int64_t> ref_route_flips;  // per layer, checked rows whose experts differ
};

double row_std(const float* r, int64_t n) {
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += r[i];
    s2 += static_cast<double>(r[i]) * r[i];
  }
  const double m = s / static_cast<double>(n);
  return std::sqrt(std::max(1e-30, s2 / static_cast<double>(n) - m * m));
}

int64_t argmax(const float* r, int64_t n) { return std::max_element(r, r + n) - r; }

double max_err_sigma(const float* q, const float* f, int64_t V) {
  double e = 0;
  for (int64_t t = 0; t < V; ++t) e = std::max(e, std::fabs(static_cast<double>(q[t]) - f[t]));
  return e / row_std(f, V);
}

// Top-1 minus top-2 of a row, in units of its sigma.
double margin_sigma(const float* f, int64_t V) {
  const int64_t top = argmax(f, V);
  double second = -1e300;
  for (int64_t t = 0; t < V; ++t)
    if (t != top) second = std::max(second, static_cast<double>(f[t]));
  return (f[top] - second) / row_std(f, V);
}

KvStats run_format(const FixtureRef& fx, const Model& model, const KvFormat& kv,
                   const KvReference* kref) {
  ThreadPool pool(2);
  const int64_t V = model.config().vocab_size, k = fx.top_k;
  KvStats s;
  s.has_ref = kref != nullptr;
  s.ref_route_flips.assign(static_cast<size_t>(fx.layers), 0);
  double sum = 0, ref_sum = 0, ref_sum_same_routes = 0;
  for (size_t pi = 0; pi < fx.prompts.size(); ++pi) {
    const PromptRef& p = fx.prompts[pi];
    std::vector<int32_t> seq = p.ids;
    seq.insert(seq.end(), p.greedy.begin(), p.greedy.end() - 1);
    KvCache cache(model.config(), static_cast<int64_t>(seq.size()), kv);
    SequenceInput in{seq, &cache, LogitsMode::kAll};
    SequenceOutput out;
    ForwardTrace trace;
    model.forward({&in, 1}, {&out, 1}, pool, &trace);
    const int64_t n_prompt = static_cast<int64_t>(p.ids.size());
    const int64_t R = static_cast<int64_t>(p.positions.size());
    for (int64_t i = 0; i < R; ++i) {
      const int64_t pos = p.positions[i];
      const float* q = &out.logits[pos * V];
      if (kref) {
        const float* r = &kref->logits[pi][i * V];
        const double e = max_err_sigma(q, r, V);
        s.ref_max_err = std::max(s.ref_max_err, e);
        ref_sum += e;
        bool flipped = false;
        for (int64_t l = 0; l < fx.layers; ++l) {
          const int32_t* mine = &trace.routes[l][pos * k];
          if (!std::equal(mine, mine + k, &kref->routes[pi][(l * R + i) * k])) {
            ++s.ref_route_flips[l];
            flipped = true;
          }
        }
        s.ref_rows_route_flipped += flipped;
        if (!flipped) {
          s.ref_max_err_same_routes = std::max(s.ref_max_err_same_routes, e);
          ref_sum_same_routes += e;
        }
        if (pos >= n_prompt - 1) {  // a continuation step
          ++s.ref_steps;
          const double margin = margin_sigma(r, V);
          const bool same = argmax(q, V) == argmax(r, V);
          if (!same) s.ref_worst_flip_margin = std::max(s.ref_worst_flip_margin, margin);
          if (margin > kGateMinMargin) {
            ++s.ref_compared;
            s.ref_agree += same;
            if (!flipped) {
              ++s.ref_compared_same_routes;
              s.ref_agree_same_routes += same;
            }
          }
        }
      }
      const float* f = &p.f64_logits[i * V];
      const double sigma = row_std(f, V);
      double e = 0;
      for (int64_t t = 0; t < V; ++t) e = std::max(e, std::fabs(static_cast<double>(q[t]) - f[t]));
      e /= sigma;
      s.max_err = std::max(s.max_err, e);
      s.argmax_rows.push_back(argmax(q, V));
      sum += e;
      ++s.rows;
      if (pos < n_prompt - 1) continue;  // a continuation step: predicts greedy[pos - n + 1]
      ++s.steps;
      const int64_t top = argmax(f, V);
      double second = -1e300;
      for (int64_t t = 0; t < V; ++t)
        if (t != top) second = std::max(second, static_cast<double>(f[t]));
      const double margin = (f[top] - second) / sigma;
      const bool same = argmax(q, V) == top;
      s.steps_agree += same;
      if (!same) {
        s.worst_flip_margin = std::max(s.worst_flip_margin, margin);
        s.flip_margins.push_back(margin);
      }
      if (margin > kMinMargin) {
        ++s.compared;
        if (same) ++s.agree;
      }
    }
  }
  if (s.rows > 0) {
    s.mean_err = sum / static_cast<double>(s.rows);
    s.ref_mean_err = ref_sum / static_cast<double>(s.rows);
    if (s.rows > s.ref_rows_route_flipped)
      s.ref_mean_err_same_routes =
          ref_sum_same_routes / static_cast<double>(s.rows - s.ref_rows_route_flipped);
  }
  return s;
}

std::string gate_line_of(const FixtureRef& fx, const KvFormat& kv, const KvStats& s) {
  std::ostringstream os;
  os.setf(std::ios::scientific);
  os.precision(2);
  os << "kv gate " << kv_format_name(kv) << " | " << fx.name << " (" << fx.compute_dtype
     << "): qcoder vs f64 with " << kv_format_name(kv) << " K/V max " << s.ref_max_err << " mean "
     << s.ref_mean_err << " sigma (gate " << kGate << "); greedy vs it " << s.ref_agree << "/"
     << s.ref_compared << " on steps with margin > " << kGateMinMargin << " sigma (of "
     << s.ref_steps << "), largest margin of a flipped step " << s.ref_worst_flip_margin
     << "; route flips per layer [";
  for (size_t l = 0; l < s.ref_route_flips.size(); ++l)
    os << (l ? "," : "") << s.ref_route_flips[l];
  os << "] of " << s.rows << " rows; on the " << s.rows - s.ref_rows_route_flipped
     << " rows with the reference's routes: max " << s.ref_max_err_same_routes << " mean "
     << s.ref_mean_err_same_routes << ", greedy " << s.ref_agree_same_routes << "/"
     << s.ref_compared_same_routes;
  return os.str();
}

std::string line_of(const FixtureRef& fx, const KvFormat& kv, const KvStats& s, const ParityStats& mlx) {
  std::ostringstream os;
  os.setf(std::ios::scientific);
  os.precision(2);
  os << "kv " << kv_format_name(kv) << " | " << fx.name << " (" << fx.compute_dtype << "): qcoder-f64 max "
     << s.max_err << " mean " << s.mean_err << " sigma (mlx-lm max " << mlx.mlx_max_err_f64 << " mean "
     << mlx.mlx_mean_err_f64 << "); greedy vs f64 " << s.agree << "/" << s.compared
     << " on steps with margin > " << kMinMargin << " sigma, " << s.steps_agree << "/" << s.steps
     << " on all; largest margin of a flipped step " << s.worst_flip_margin;
  return os.str();
}

// qcoder's quantized cache against mlx-lm's (ref/kv_peer.json).
void check_peer(const FixtureRef& fx, int bits, const KvStats& s) {
  std::ifstream in(std::filesystem::path(fx.dir) / "ref" / "kv_peer.json");
  ASSERT_TRUE(in) << fx.dir << ": ref/kv_peer.json missing (tests/reference/make_kv_peer_refs.py)";
  const nlohmann::json peer = nlohmann::json::parse(in).at("kv" + std::to_string(bits));
  double sum = 0;
  int64_t rows = 0, same = 0;
  for (const PromptRef& p : fx.prompts) {
    const auto& r = peer.at(p.key);
    for (size_t i = 0; i < r.at("err").size(); ++i) {
      sum += r.at("err")[i].get<double>();
      ASSERT_LT(static_cast<size_t>(rows), s.argmax_rows.size());
      same += s.argmax_rows[static_cast<size_t>(rows)] == r.at("argmax")[i].get<int64_t>();
      ++rows;
    }
  }
  ASSERT_EQ(static_cast<size_t>(rows), s.argmax_rows.size());
  const double mlx_mean = sum / static_cast<double>(rows);
  std::ostringstream os;
  os.setf(std::ios::scientific);
  os.precision(2);
  os << "peer kv" << bits << " | " << fx.name << ": qcoder-f64 mean " << s.mean_err << ", mlx-lm QuantizedKVCache-f64 mean "
     << mlx_mean << " sigma (ratio " << s.mean_err / mlx_mean << "); top-1 qcoder vs mlx-lm " << same << "/" << rows;
  std::ofstream(std::filesystem::path(QCODER_BINARY_DIR) / "kv-parity-report.txt", std::ios::app)
      << os.str() << "\n";
  std::cout << os.str() << std::endl;
  EXPECT_LE(s.mean_err, kPeerRatio * mlx_mean) << os.str();
}

class KvFormatFixture : public testing::TestWithParam<std::string> {};

TEST_P(KvFormatFixture, FormatsMeetTheirBounds) {
  const FixtureRef fx = load_fixture(GetParam());
  auto model = Model::load(fx.dir);
  const ParityStats mlx = run_parity(fx, 2, kv_format_from_bits(32));  // for mlx-lm's own errors
  for (int bits : {32, 16, 8, 4}) {
    const KvFormat kv = kv_format_from_bits(bits);
    KvReference kref;
    const char* ref_name = bits == 16 ? "bf16" : bits == 8 ? "q8" : bits == 4 ? "q4" : nullptr;
    const bool has_ref = ref_name && load_kv_reference(fx, ref_name, &kref);
    const bool integer_acts = integer_activations(fx.dir);
    if (bits == 16) {
      ASSERT_TRUE(has_ref)
          << fx.dir << ": ref/kv_bf16.safetensors missing (tests/reference/make_kv_format_refs.py)";
    }
    const KvStats s = run_format(fx, *model, kv, has_ref ? &kref : nullptr);
    std::ostringstream lines;
    lines << line_of(fx, kv, s, mlx);
    if (has_ref) lines << "\n" << gate_line_of(fx, kv, s);
    const std::string line = lines.str();
    std::ofstream(std::filesystem::path(QCODER_BINARY_DIR) / "kv-parity-report.txt", std::ios::app)
        << line << "\n";
    std::cout << line << std::endl;
    SCOPED_TRACE(line);
    if (has_ref && !integer_acts) {
      // Float32 activations: the engine core's gate against the storage-modelled reference,
      // every format.
      EXPECT_LE(s.ref_max_err, kGate) << "gate: qcoder vs float64 with " << ref_name << " K/V";
      EXPECT_EQ(s.ref_agree, s.ref_compared)
          << "greedy disagreement above " << kGateMinMargin << " sigma";
      EXPECT_GE(s.ref_compared * 10, s.ref_steps * 8) << "fewer than 80% of greedy steps compared";
    } else if (has_ref && bits == 16) {
      // int16 activations (quantized weights): their ~1e-5 relative rounding moves some keys/
      // values across a bf16 rounding boundary (one bf16 ulp each), ~10x the f32-cache error;
      // a float64 model with the same activation rounding shows the same figures
      // (docs/KV_CACHE.md). On the rows whose experts are the reference's (a routing flip on a
      // near-tied router is a discrete decision), the gate holds on the mean, the max stays
      // within 2x the gate, and the clear greedy steps are the reference's.
      EXPECT_LE(s.ref_mean_err_same_routes, kGate) << "bf16 gate (mean), integer activations";
      EXPECT_LE(s.ref_max_err_same_routes, kIntActsMaxErr)
          << "bf16, integer activations, rows off a routing flip";
      EXPECT_EQ(s.ref_agree_same_routes, s.ref_compared_same_routes)
          << "greedy disagreement above " << kGateMinMargin << " sigma";
      EXPECT_LE(s.ref_rows_route_flipped * 20, s.rows)
          << "routing flips on more than 5% of the rows";
    }
    ASSERT_GT(s.compared, 0);
    if (bits == 32) {
      EXPECT_LE(s.max_err, 5e-3) << "gate: qcoder vs float64";
      EXPECT_EQ(s.agree, s.compared);
    } else if (bits == 16) {
      EXPECT_EQ(s.agree, s.compared) << "greedy output changed on a step outside the near-ties";
      if (fx.compute_dtype == "bfloat16") {
        EXPECT_LE(s.mean_err, mlx.mlx_mean_err_f64);
      }
    } else if (bits == 8) {
      EXPECT_EQ(s.flips_above(kQ8MinMargin), 0) << "8-bit KV changed a clear greedy decision";
      EXPECT_LE(s.mean_err, kQ8MaxMeanErr);
    } else {
      EXPECT_LE(s.mean_err, kQ4MaxMeanErr);
      EXPECT_GE(static_cast<double>(s.agree), kQ4MinAgree * static_cast<double>(s.compared));
    }
    if (bits == 8 || bits == 4) check_peer(fx, bits, s);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, KvFormatFixture, testing::ValuesIn(committed_fixture_dirs()),
                         [](const testing::TestParamInfo<std::string>& param_info) {
                           return std::filesystem::path(param_info.param).filename().string();
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(KvFormatFixture);

}  // namespace
}  // namespace qcoder::parity
