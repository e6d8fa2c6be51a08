// issue 8 items 1 and 4 through the CLI: the --rope-* flags of the commands that run the model
// and `qcoder inspect`'s KV format, YaRN context and paging budget.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "io/safetensors_writer.h"

namespace qcoder {
namespace {

using nlohmann::json;

using Result = testing::CliResult;
using testing::slurp;
Result run(const std::string& args) { return testing::run_cli(args); }

const std::string kModel = std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/models/q4_g64";
const std::string k480 = std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/configs/qwen3-coder-480b-a35b-4bit";

// A copy of `src` (files only) with config.json's rope_scaling replaced.
void copy_with_rope_scaling(const std::string& src, const std::filesystem::path& dst, const json& block) {
  for (const auto& e : std::filesystem::directory_iterator(src))
    if (e.is_regular_file()) std::filesystem::copy_file(e.path(), dst / e.path().filename());
  std::ifstream in(src + "/config.json");
  json j = json::parse(in);
  j["rope_scaling"] = block;
  std::filesystem::remove(dst / "config.json");
  std::ofstream(dst / "config.json") << j.dump();
}

json inspect(const std::string& args) {
  Result r = run("inspect --json " + args);
  EXPECT_EQ(r.code, 0) << args << ": " << r.err;
  return r.code == 0 ? json::parse(r.out) : json();
}

TEST(CliLongContext, InspectKvFormatsAndPaging) {
  const json j = inspect("-m " + k480);
  EXPECT_EQ(j["kv_format"], "bf16");
  EXPECT_TRUE(j["kv_group_size"].is_null());
  EXPECT_EQ(j["max_ctx"], 262144);
  EXPECT_TRUE(j["rope_scaling"].is_null());
  EXPECT_EQ(j["weights_resident_bytes"].get<uint64_t>() + j["weights_paged_bytes"].get<uint64_t>(),
            j["weights_bytes"].get<uint64_t>());
  EXPECT_EQ(j["resident_bytes"].get<uint64_t>(), j["weights_resident_bytes"].get<uint64_t>() +
                                                     j["kv_bytes_at_ctx"].get<uint64_t>() +
                                                     j["activation_bytes"].get<uint64_t>());
  for (auto [bits, per_token, format] : std::vector<std::tuple<int, uint64_t, const char*>>{
           {8, 134912, "affine 8-bit g64"}, {4, 71424, "affine 4-bit g64"}, {32, 507904, "float32"}}) {
    const json k = inspect("-m " + k480 + " --ctx 32768 --kv-bits " + std::to_string(bits));
    EXPECT_EQ(k["kv_bytes_per_token"].get<uint64_t>(), per_token) << bits;
    EXPECT_EQ(k["kv_bytes_at_ctx"].get<uint64_t>(), per_token * 32768) << bits;
    EXPECT_EQ(k["kv_format"], format);
  }
  // The text form has the new lines.
  Result r = run("inspect -m " + k480 + " --kv-bits 8");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"affine 8-bit g64", "context      262144 of 262144", "paging", "must stay resident"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

TEST(CliLongContext, InspectYarnContext) {
  // Beyond the usable context: an error that says how to extend it.
  Result r = run("inspect -m " + k480 + " --ctx 1048576");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.last_err_line().find("exceeds the usable context of 262144"), std::string::npos) << r.err;
  EXPECT_NE(r.last_err_line().find("--rope-scaling yarn"), std::string::npos) << r.err;
  // YaRN from the command line: 1M usable, 266 GB of bf16 KV there.
  json j = inspect("-m " + k480 + " --rope-scaling yarn --rope-factor 4 --ctx 1048576");
  EXPECT_EQ(j["max_ctx"], 1048576);
  EXPECT_EQ(j["kv_bytes_at_ctx"].get<uint64_t>(), 253952ull * 1048576);
  EXPECT_EQ(j["rope_scaling"]["factor"], 4.0);
  EXPECT_EQ(j["rope_scaling"]["original_max_position_embeddings"], 262144);
  EXPECT_NEAR(j["rope_scaling"]["attention_factor"].get<double>(), 1.138629436, 1e-9);
  // YaRN from config.json applies by default (ctx 0 = 1M); --rope-scaling none ignores it.
  testing::TempDir tmp;
  copy_with_rope_scaling(k480, tmp.path(),
                         {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 262144}});
  j = inspect("-m " + tmp.path().string());
  EXPECT_EQ(j["ctx"], 1048576);
  EXPECT_EQ(j["max_ctx"], 1048576);
  j = inspect("-m " + tmp.path().string() + " --rope-scaling none");
  EXPECT_EQ(j["ctx"], 262144);
  EXPECT_TRUE(j["rope_scaling"].is_null());
}

TEST(CliLongContext, LogitsRopeFlags) {
  testing::TempDir tmp;
  const auto logits = [&](const std::string& model, const std::string& flags) {
    const std::string out = (tmp.path() / "l.bin").string();
    Result r = run("logits -m " + model + " --ids 1,2,3,4,5,6,7,8 --all-positions --out " + out + " -t 1 " + flags);
    EXPECT_EQ(r.code, 0) << flags << ": " << r.err;
    return slurp(out);
  };
  const std::string plain = logits(kModel, "");
  ASSERT_FALSE(plain.empty());
  EXPECT_EQ(logits(kModel, "--rope-scaling none"), plain);
  const std::string scaled = logits(kModel, "--rope-scaling yarn --rope-factor 4 --rope-orig-ctx 1024");
  EXPECT_NE(scaled, plain);
  // The same YaRN from config.json gives the same bytes; --rope-scaling none the plain ones.
  testing::TempDir yarn_dir;
  copy_with_rope_scaling(kModel, yarn_dir.path(),
                         {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 1024}});
  EXPECT_EQ(logits(yarn_dir.path().string(), ""), scaled);
  EXPECT_EQ(logits(yarn_dir.path().string(), "--rope-scaling none"), plain);
}

TEST(CliLongContext, RopeErrors) {
  testing::TempDir linear;
  copy_with_rope_scaling(kModel, linear.path(), {{"rope_type", "linear"}, {"factor", 2.0}});
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {"logits -m " + kModel + " --ids 1 --out /dev/null --rope-scaling ntk", "--rope-scaling must be"},
      {"logits -m " + kModel + " --ids 1 --out /dev/null --rope-factor 4", "need --rope-scaling yarn"},
      {"logits -m " + kModel + " --ids 1 --out /dev/null --rope-scaling yarn", "needs --rope-factor"},
      {"generate -m " + kModel + " --ids 1 -n 1 --rope-scaling yarn --rope-factor 0.5", "--rope-factor"},
      {"bench -m " + kModel + " --rope-scaling yarn --rope-factor 2 --rope-orig-ctx -3", "--rope-orig-ctx"},
      {"serve -m " + kModel + " --port 0 --rope-scaling bogus", "--rope-scaling must be"},
      {"logits -m " + linear.path().string() + " --ids 1 --out /dev/null", "\"linear\" is not supported"},
      {"inspect -m " + kModel + " --ctx 4097", "usable context of 4096"},
  };
  for (const Case& c : cases) {
    Result r = run(c.args);
    EXPECT_NE(r.code, 0) << c.args;
    EXPECT_NE(r.last_err_line().find(c.expect), std::string::npos) << c.args << ": " << r.err;
  }
  // Ignoring the unsupported block, as mlx-lm does, runs.
  EXPECT_EQ(run("logits -m " + linear.path().string() + " --ids 1 --out /dev/null --rope-scaling none").code, 0);
  for (const char* cmd : {"logits", "generate", "serve", "bench", "inspect"}) {
    Result r = run(std::string(cmd) + " --help");
    for (const char* flag : {"--rope-scaling", "--rope-factor", "--rope-orig-ctx"})
      EXPECT_NE(r.out.find(flag), std::string::npos) << cmd << " " << flag;
  }
}

}  // namespace
}  // namespace qcoder
