// `mpirun -np N qcoder generate --parallel ...` end to end (issue 7): the tokens equal the
// single process's, only rank 0 writes stdout, the plan goes to stderr, a failing or hanging
// rank ends the job with a clear error, and under the pipeline plan no rank's peak RSS exceeds
// 3/4 of the single process's.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/model_fixture.h"

namespace qcoder {
namespace {

struct Result {
  int code = -1;
  std::string out, err;
  long max_rss_kb = 0;  // the largest of the process and everything it waited for
  double seconds = 0;
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result run(const std::string& cmd) {
  testing::TempDir tmp;
  const auto out = tmp.path() / "out", err = tmp.path() / "err";
  const std::string full = cmd + " >" + out.string() + " 2>" + err.string();
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  Result r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.max_rss_kb = usage.ru_maxrss;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

const std::string kCli = QCODER_CLI;
#ifdef QCODER_SANITIZED
// OpenMPI's allocations outlive MPI_Finalize; see tests/mpi/CMakeLists.txt.
const std::string kMpiEnv =
    "ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 LSAN_OPTIONS=suppressions=" +
    std::string(QCODER_SOURCE_DIR) + "/tests/mpi/lsan.supp:print_suppressions=0 ";
#else
const std::string kMpiEnv;
#endif
const std::string kMpirun = kMpiEnv + QCODER_MPIEXEC + " --allow-run-as-root --oversubscribe -np ";
const std::string kModels = std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/models/";

std::string mpirun(int np, const std::string& args) {
  return kMpirun + std::to_string(np) + " " + kCli + " " + args;
}

TEST(MpiCli, GenerateEqualsOneProcessAndOnlyRankZeroPrints) {
  for (const char* fixture : {"q4_g64", "shape480"}) {
    const std::string args =
        "generate -m " + kModels + fixture + " --ids 5,6,7,8 -n 10 --json -t 1";
    const Result single = run(kCli + " " + args);
    ASSERT_EQ(single.code, 0) << single.err;
    for (int np : {2, 3})
      for (const char* mode : {"pipeline", "expert", "combined", "auto"}) {
        if (std::string(mode) == "combined" && np < 3) continue;
        if (std::string(mode) == "pipeline" && std::string(fixture) == "shape480" && np > 2)
          continue;  // 2 layers
        const Result r = run(mpirun(np, args + " --parallel " + mode));
        EXPECT_EQ(r.code, 0) << fixture << " " << mode << " np " << np << ": " << r.err;
        EXPECT_EQ(r.out, single.out)
            << fixture << " " << mode << " np " << np << ": one line, from rank 0";
        EXPECT_NE(r.err.find(std::string(mode) == "auto" ? "plan over"
                                                         : std::string(mode) + " plan over"),
                  std::string::npos)
            << r.err;
      }
  }
}

TEST(MpiCli, SampledGenerationIsReproducible) {
  const std::string args =
      "generate -m " + kModels + "q4_g64 --ids 1,2,3 -n 8 --json --temp 0.8 --seed 3 -t 1";
  const Result single = run(kCli + " " + args);
  const Result r = run(mpirun(3, args + " --parallel pipeline"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, single.out);
}

// --mem-budget under mpirun bounds each rank's share of the weights: paging changes no token,
// every rank reports its residency, and a budget too small for a rank's share ends the job.
TEST(MpiCli, GenerateUnderAMemoryBudgetPerRank) {
  const std::string args = "generate -m " + kModels + "q4_g64 --ids 1,2,3 -n 6 --json -t 1";
  const Result single = run(kCli + " " + args);
  ASSERT_EQ(single.code, 0) << single.err;
  for (const char* mode : {"pipeline", "expert"}) {
    const Result r = run(mpirun(2, args + " --parallel " + mode + " --mem-budget 1M --residency-refresh 2"));
    EXPECT_EQ(r.code, 0) << mode << ": " << r.err;
    EXPECT_EQ(r.out, single.out) << mode;
    size_t lines = 0;
    for (size_t at = r.err.find("hot experts"); at != std::string::npos; at = r.err.find("hot experts", at + 1))
      ++lines;
    EXPECT_EQ(lines, 2u) << mode << ": one residency report per rank\n" << r.err;
  }
  const Result tiny = run(mpirun(2, args + " --parallel pipeline --mem-budget 1K"));
  EXPECT_NE(tiny.code, 0);
  EXPECT_TRUE(tiny.out.empty());
  EXPECT_NE(tiny.err.find("too small"), std::string::npos) << tiny.err;
}

// `logits` under mpirun: rank 0 writes the file. A pipeline is bitwise; split experts and
// heads reorder float32 sums (mpi_model_test.cc's bound, relative to the row's spread).
TEST(MpiCli, LogitsEqualOneProcess) {
  testing::TempDir tmp;
  auto read_floats = [](const std::string& path) {
    const std::string bytes = slurp(path);
    std::vector<float> v(bytes.size() / sizeof(float));
    std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
    return v;
  };
  const std::string args = "logits -m " + kModels + "q4_g64 --ids 5,6,7,8,9 --all-positions --kv-bits 32 -t 1 --out ";
  ASSERT_EQ(run(kCli + " " + args + tmp.file("single.bin")).code, 0);
  const std::vector<float> want = read_floats(tmp.file("single.bin"));
  ASSERT_EQ(want.size() % 5, 0u);
  ASSERT_FALSE(want.empty());
  for (const char* mode : {"pipeline", "expert"}) {
    const std::string file = tmp.file(std::string(mode) + ".bin");
    const Result r = run(mpirun(3, args + file + " --parallel " + mode));
    ASSERT_EQ(r.code, 0) << mode << ": " << r.err;
    const std::vector<float> got = read_floats(file);
    ASSERT_EQ(got.size(), want.size()) << mode;
    if (std::string(mode) == "pipeline") {
      EXPECT_EQ(got, want);
      continue;
    }
    // Per row, in units of the row's standard deviation, mpi_model_test.cc's bound. The KV
    // cache is float32 here: in bf16, the reordered sums' last-bit differences tip some K/V
    // elements across a bf16 rounding boundary, which about doubles the difference
    // (docs/KV_CACHE.md tells the same story for the int16 activations).
    const size_t V = want.size() / 5;
    for (size_t row = 0; row < 5; ++row) {
      const float* w = want.data() + row * V;
      const float* g = got.data() + row * V;
      double mean = 0, sq = 0, worst = 0;
      for (size_t i = 0; i < V; ++i) mean += w[i];
      mean /= static_cast<double>(V);
      for (size_t i = 0; i < V; ++i) sq += (w[i] - mean) * (w[i] - mean);
      const double sigma = std::sqrt(sq / static_cast<double>(V));
      for (size_t i = 0; i < V; ++i) worst = std::max(worst, std::fabs(double(g[i]) - w[i]) / sigma);
      EXPECT_LT(worst, 2e-3) << mode << " row " << row;
      EXPECT_EQ(std::max_element(g, g + V) - g, std::max_element(w, w + V) - w) << mode << " row " << row;
    }
  }
}

// --rope-* overrides apply on every rank: YaRN under a pipeline equals YaRN in one process.
TEST(MpiCli, RopeOverridesApplyOnEveryRank) {
  testing::TempDir tmp;
  const std::string args = "logits -m " + kModels + "q4_g64 --ids 5,6,7,8,9 -t 1 --out ";
  const std::string yarn = " --rope-scaling yarn --rope-factor 4 --rope-orig-ctx 64";
  ASSERT_EQ(run(kCli + " " + args + tmp.file("plain.bin")).code, 0);
  ASSERT_EQ(run(kCli + " " + args + tmp.file("single.bin") + yarn).code, 0);
  const Result r = run(mpirun(2, args + tmp.file("pipeline.bin") + yarn + " --parallel pipeline"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(tmp.file("pipeline.bin")), slurp(tmp.file("single.bin")));
  EXPECT_NE(slurp(tmp.file("single.bin")), slurp(tmp.file("plain.bin"))) << "YaRN changes the logits";
}

// --kv-bits travels with the sequence: 8-bit KV over a pipeline equals 8-bit KV alone.
TEST(MpiCli, GenerateWithQuantizedKv) {
  const std::string args = "generate -m " + kModels + "q4_g64 --ids 1,2,3,4 -n 8 --json -t 1 --kv-bits 8";
  const Result single = run(kCli + " " + args);
  ASSERT_EQ(single.code, 0) << single.err;
  const Result r = run(mpirun(2, args + " --parallel pipeline"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, single.out);
}

TEST(MpiCli, AutoOverMachinesPipelines) {
  // QCODER_FAKE_HOST gives each rank its own host name: auto then pipelines across "machines".
  const Result r = run("QCODER_FAKE_HOST=host%r " + kMpirun + "3 -x QCODER_FAKE_HOST " + kCli +
                       " generate -m " + kModels + "q4_g64 --ids 1,2 -n 3 --json -t 1");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("pipeline plan over 3 ranks (3 machines"), std::string::npos) << r.err;
}

TEST(MpiCli, AFailingRankEndsTheJobWithItsError) {
  // Layer 2 lacks a tensor: only the rank that holds layer 2 finds out.
  testing::EditableModel m("q4_g64");
  m.drop("model.layers.2.self_attn.q_norm.weight");
  const std::string dir = m.write();
  const Result r =
      run(mpirun(2, "generate -m " + dir +
                        " --ids 1,2 -n 3 --json -t 1 --parallel pipeline --comm-timeout 20"));
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("rank 1 of 2: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("model.layers.2.self_attn.q_norm.weight"), std::string::npos) << r.err;
  EXPECT_LT(r.seconds, 15.0) << "the failing rank aborts the job; nobody waits for a deadline";
}

TEST(MpiCli, AHangingRankHitsTheDeadline) {
  Result r = run(kMpirun + "2 " + QCODER_ABORT_PROBE + " hang");
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(r.out.find("unreachable"), std::string::npos);
  EXPECT_NE(r.err.find("rank 0 of 2: error: all-gather did not complete within 1 s"),
            std::string::npos)
      << r.err;
  EXPECT_LT(r.seconds, 30.0);
  r = run(kMpirun + "3 " + QCODER_ABORT_PROBE + " throw");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("rank 1 of 3: error: rank-specific failure (probe)"), std::string::npos)
      << r.err;
}

TEST(MpiCli, ErrorsBeforeStartingStayPlain) {
  const Result r =
      run(mpirun(2, "generate -m " + kModels + "q4_g64 --ids 1 -n 2 --parallel sideways"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--parallel must be pipeline, expert, combined or auto"), std::string::npos)
      << r.err;
  const Result s =
      run(mpirun(3, "generate -m " + kModels + "shape480 --ids 1 -n 2 --parallel pipeline"));
  EXPECT_NE(s.code, 0);
  EXPECT_NE(s.err.find("needs at least 3 layers"), std::string::npos) << s.err;
}

#ifndef QCODER_SANITIZED
// Peak RSS: a ~350 MB model whose every weight is read by every token (top-8 of 8 experts).
// Each pipeline rank maps the whole file but touches only its layers' pages.
TEST(MpiCli, PipelineRanksHoldTheirShareOfMemory) {
  testing::TempDir tmp;
  const std::string dir = tmp.file("synthetic");
  ASSERT_EQ(run(std::string(QCODER_SYNTHETIC_MODEL) + " " + dir + " --layers 6").code, 0);
  const std::string args = "generate -m " + dir + " --ids 1,2 -n 2 --json -t 1";
  const Result single = run(kCli + " " + args);
  ASSERT_EQ(single.code, 0) << single.err;
  std::ofstream report(std::string(QCODER_BINARY_DIR) + "/mpi-rss-report.txt");
  report << "single process: peak RSS " << single.max_rss_kb / 1024 << " MiB\n";
  for (int np : {2, 3}) {
    const Result r = run(mpirun(np, args + " --parallel pipeline"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, single.out);
    // wait4 on mpirun reports the largest peak among it and its ranks.
    EXPECT_LE(static_cast<double>(r.max_rss_kb), 0.75 * static_cast<double>(single.max_rss_kb))
        << "np " << np << ": largest rank " << r.max_rss_kb << " kB, single process "
        << single.max_rss_kb << " kB";
    report << "pipeline np " << np << ": largest rank peak RSS " << r.max_rss_kb / 1024 << " MiB ("
           << static_cast<double>(r.max_rss_kb) / static_cast<double>(single.max_rss_kb)
           << " of the single process)\n";
  }
}
#endif

}  // namespace
}  // namespace qcoder
