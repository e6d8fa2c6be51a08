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
//   activations and a bf16 cache). bf16 storage alone costs ~1e-2 sigma, above the 5e-3 gate,
//   which --kv-bits 32 meets.
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

KvStats run_format(const FixtureRef& fx, const Model& model, const KvFormat& kv) {
  ThreadPool pool(2);
  const int64_t V = model.config().vocab_size;
  KvStats s;
  double sum = 0;
  for (const PromptRef& p : fx.prompts) {
    std::vector<int32_t> seq = p.ids;
    seq.insert(seq.end(), p.greedy.begin(), p.greedy.end() - 1);
    KvCache cache(model.config(), static_cast<int64_t>(seq.size()), kv);
    SequenceInput in{seq, &cache, LogitsMode::kAll};
    SequenceOutput out;
    model.forward({&in, 1}, {&out, 1}, pool);
    const int64_t n_prompt = static_cast<int64_t>(p.ids.size());
    for (size_t i = 0; i < p.positions.size(); ++i) {
      const int64_t pos = p.positions[i];
      const float* q = &out.logits[pos * V];
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
  if (s.rows > 0) s.mean_err = sum / static_cast<double>(s.rows);
  return s;
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
    const KvStats s = run_format(fx, *model, kv);
    const std::string line = line_of(fx, kv, s, mlx);
    std::ofstream(std::filesystem::path(QCODER_BINARY_DIR) / "kv-parity-report.txt", std::ios::app)
        << line << "\n";
    std::cout << line << std::endl;
    SCOPED_TRACE(line);
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
