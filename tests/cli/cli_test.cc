// The CLI contract (issue 2, item 9): stdout carries only the result, diagnostics go to
// stderr, a failure exits non-zero with the error as the last stderr line.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "io/safetensors_writer.h"
#include "model/model.h"

namespace qcoder {
namespace {

using Result = testing::CliResult;
using testing::slurp;
Result run(const std::string& args) { return testing::run_cli(args); }

const std::string kModel = std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/models/q4_g64";
const std::string k480 = std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/configs/qwen3-coder-480b-a35b-4bit";

std::vector<float> forward_logits(const std::vector<int32_t>& ids, LogitsMode mode, bool fast = false) {
  auto model = Model::load(kModel);
  model->set_fast_numerics(fast);
  ThreadPool pool(1);
  KvCache cache = model->new_cache(64);
  SequenceInput in{ids, &cache, mode};
  SequenceOutput out;
  model->forward({&in, 1}, {&out, 1}, pool);
  return out.logits;
}

TEST(Cli, LogitsWritesFloat32Rows) {
  testing::TempDir tmp;
  const std::string file = tmp.file("logits.bin");
  Result r = run("logits -m " + kModel + " --ids 1,2,3 --out " + file + " -t 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.empty());
  const std::string bytes = slurp(file);
  const auto want = forward_logits({1, 2, 3}, LogitsMode::kLast);
  ASSERT_EQ(bytes.size(), want.size() * 4);
  EXPECT_EQ(std::memcmp(bytes.data(), want.data(), bytes.size()), 0);

  r = run("logits -m " + kModel + " --ids 1,2,3 --all-positions --out " + file);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto all = forward_logits({1, 2, 3}, LogitsMode::kAll);
  const std::string all_bytes = slurp(file);
  ASSERT_EQ(all_bytes.size(), all.size() * 4);
  EXPECT_EQ(std::memcmp(all_bytes.data(), all.data(), all_bytes.size()), 0);
}

// --fast reaches the model: the logits are Model::set_fast_numerics(true)'s, bit for bit, and
// not the default's (8-bit inputs to the gate/up products and the head move every logit).
TEST(Cli, LogitsWithFast) {
  testing::TempDir tmp;
  const std::string file = tmp.file("logits.bin");
  Result r = run("logits -m " + kModel + " --ids 1,2,3 --out " + file + " -t 2 --fast");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string bytes = slurp(file);
  const auto want = forward_logits({1, 2, 3}, LogitsMode::kLast, true);
  ASSERT_EQ(bytes.size(), want.size() * 4);
  EXPECT_EQ(std::memcmp(bytes.data(), want.data(), bytes.size()), 0);
  const auto exact = forward_logits({1, 2, 3}, LogitsMode::kLast, false);
  EXPECT_NE(std::memcmp(exact.data(), want.data(), bytes.size()), 0);
}

TEST(Cli, GenerateJsonIsOneLine) {
  Result r = run("generate -m " + kModel + " --ids 1,2,3 -n 5 --json -t 1");
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ids"].size(), 5u);
  EXPECT_EQ(j["finish_reason"], "length");
  EXPECT_TRUE(j.contains("text"));
  EXPECT_EQ(r.out.rfind("{\"ids\":", 0), 0u) << "keys in the documented order";
  // Greedy is deterministic; a seeded sample is reproducible.
  EXPECT_EQ(run("generate -m " + kModel + " --ids 1,2,3 -n 5 --json").out, r.out);
  const std::string sampled = "generate -m " + kModel + " --ids 1,2,3 -n 8 --json --temp 0.8 --top-p 0.9 --seed 7";
  EXPECT_EQ(run(sampled).out, run(sampled).out);
}

// Paging under a weight budget changes no token; a budget below what every token reads, or not
// a size, is a clear error.
TEST(Cli, GenerateUnderAMemoryBudget) {
  const std::string base = "generate -m " + kModel + " --ids 1,2,3 -n 6 --json -t 1";
  const Result plain = run(base);
  ASSERT_EQ(plain.code, 0) << plain.err;
  Result r = run(base + " --mem-budget 1M --residency-refresh 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, plain.out);
  EXPECT_NE(r.err.find("weight residency"), std::string::npos) << r.err;
  r = run(base + " --mem-budget 1K");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.last_err_line().find("too small"), std::string::npos) << r.err;
  r = run(base + " --mem-budget lots");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.last_err_line().find("--mem-budget"), std::string::npos) << r.err;
}

TEST(Cli, GenerateStopsOnEos) {
  // Make the model's own first greedy token a stop token: generation ends at once.
  const auto first = nlohmann::json::parse(run("generate -m " + kModel + " --ids 1,2,3 -n 1 --json").out)["ids"][0];
  testing::TempDir tmp;
  for (const auto& e : std::filesystem::directory_iterator(kModel))
    if (e.is_regular_file()) std::filesystem::copy_file(e.path(), tmp.path() / e.path().filename());
  std::ofstream(tmp.path() / "generation_config.json") << "{\"eos_token_id\": [" << first << "]}";
  Result r = run("generate -m " + tmp.path().string() + " --ids 1,2,3 -n 5 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["ids"].empty());
  EXPECT_EQ(j["finish_reason"], "stop");
  r = run("generate -m " + tmp.path().string() + " --ids 1,2,3 -n 5 --json --ignore-eos");
  EXPECT_EQ(nlohmann::json::parse(r.out)["ids"].size(), 5u);
}

TEST(Cli, Inspect480BConfigOnly) {
  Result r = run("inspect -m " + k480 + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["weights_bytes"].get<uint64_t>(), 270088244224ull);
  EXPECT_EQ(j["kv_bytes_per_token"].get<uint64_t>(), 253952ull);
  EXPECT_EQ(j["kv_bytes_at_ctx"].get<uint64_t>(), 253952ull * 262144);
  EXPECT_TRUE(j["tensor_count"].is_null());
  for (const char* key : {"activation_bytes", "total_bytes", "quantization"}) EXPECT_TRUE(j.contains(key)) << key;
  r = run("inspect -m " + k480 + " --json --ctx 1000 --kv-bits 8");
  EXPECT_EQ(nlohmann::json::parse(r.out)["kv_bytes_at_ctx"].get<uint64_t>(), 1000ull * 2 * 62 * 8 * 136);
  r = run("inspect -m " + kModel + " --json");
  EXPECT_EQ(nlohmann::json::parse(r.out)["tensor_count"].get<int>(), 91);
}

TEST(Cli, ErrorsAreTheLastStderrLine) {
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {"logits -m /nonexistent --ids 1 --out /dev/null", "config.json"},
      {"logits -m " + kModel + " --ids 1,x --out /dev/null", "--ids"},
      {"logits -m " + kModel + " --ids 1,99999 --out /dev/null", "99999"},
      {"logits -m " + kModel + " --ids 1", "--out"},
      {"generate -m " + kModel + " -n 3", "--ids"},
      {"generate -m " + kModel + " --ids 1 -n 3 --temp -1", "temperature"},
      {"generate -m " + kModel + " --ids 1 -n 3 --bogus", "--bogus"},
      {"inspect -m " + kModel + " --kv-bits 5", "kv-bits"},
      {"frobnicate", "frobnicate"},
  };
  for (const Case& c : cases) {
    Result r = run(c.args);
    EXPECT_NE(r.code, 0) << c.args;
    EXPECT_TRUE(r.out.empty()) << c.args << ": stdout " << r.out;
    EXPECT_NE(r.last_err_line().find(c.expect), std::string::npos) << c.args << ": " << r.err;
  }
}

TEST(Cli, HelpListsEveryFlag) {
  Result r = run("generate --help");
  EXPECT_EQ(r.code, 0);
  for (const char* flag : {"--model", "--ids", "--max-tokens", "--temp", "--seed", "--json", "--threads"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

// qcoder plan (issue 7): placement and decode estimate from config.json alone; the same byte
// counts as inspect.
TEST(Cli, Plan480BConfigOnly) {
  Result r = run("plan -m " + k480 + " --nodes 2 --mem-per-node 256 --ctx 65536 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["weights_bytes"].get<uint64_t>(), 270088244224ull);
  EXPECT_EQ(j["kv_bytes_per_token"].get<uint64_t>(), 253952ull);
  EXPECT_EQ(j["auto"], "pipeline");
  ASSERT_EQ(j["plans"].size(), 2u);
  for (const auto& p : j["plans"]) {
    ASSERT_EQ(p["nodes"].size(), 2u) << p.dump();
    EXPECT_TRUE(p["fits"].get<bool>()) << p.dump();
    uint64_t kv = 0;
    for (const auto& n : p["nodes"]) kv += n["kv_bytes"].get<uint64_t>();
    EXPECT_EQ(kv, 253952ull * 65536) << p["mode"];
    EXPECT_GT(p["decode"][0]["tokens_per_second"].get<double>(), 0.0);
  }
  const auto& pipe = j["plans"][0];
  EXPECT_EQ(pipe["mode"], "pipeline");
  EXPECT_EQ(pipe["nodes"][0]["layer_begin"], 0);
  EXPECT_EQ(pipe["nodes"][0]["layer_end"], pipe["nodes"][1]["layer_begin"]);
  EXPECT_EQ(pipe["nodes"][1]["layer_end"], 62);
  // One node of 256 GB cannot hold 270 GB of weights.
  r = run("plan -m " + k480 + " --nodes 1 --mem-per-node 256 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(nlohmann::json::parse(r.out)["plans"][0]["fits"].get<bool>());
  // Text output names each node and the expected speed.
  r = run("plan -m " + k480 + " --nodes 4 --mem-per-node 128 --link-gbps 200 --link-latency-us 3");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* want : {"node 3: layers", "tok/s at batch 1", "auto        pipeline"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  // With weights: the sizes come from the safetensors headers.
  r = run("plan -m " + kModel + " --nodes 2 --mem-per-node 1 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["weights_source"], "safetensors");
  for (const char* bad : {"--nodes 0 --mem-per-node 10", "--nodes 2", "--nodes 2 --mem-per-node 10 --kv-bits 5"}) {
    r = run("plan -m " + k480 + " " + bad);
    EXPECT_NE(r.code, 0) << bad;
    EXPECT_TRUE(r.out.empty()) << bad;
  }
}

TEST(Cli, GenerateWithoutMpirunIgnoresParallel) {
  Result a = run("generate -m " + kModel + " --ids 1,2,3 -n 4 --json -t 1");
  Result b = run("generate -m " + kModel + " --ids 1,2,3 -n 4 --json -t 1 --parallel pipeline");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(b.err.find("not started by mpirun"), std::string::npos) << b.err;
  EXPECT_NE(run("generate -m " + kModel + " --ids 1 -n 1 --parallel sideways").code, 0);
}

// Tokenizer commands (issue 3): tokenize prints a bare JSON array, detokenize the exact text.
const std::string kTokDir = std::string(QCODER_SOURCE_DIR) + "/tests/tokenizer/fixtures/qwen3-coder";

TEST(Cli, TokenizePrintsABareJsonArray) {
  Result r = run("tokenize -m " + kTokDir + " --text 'Hello, world!'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[9707,11,1879,0]\n");
  EXPECT_EQ(run("tokenize -m " + kTokDir + " --text ''").out, "[]\n");
  // Special tokens are parsed unless --no-special; <tool_call> is not special and stays one token.
  EXPECT_EQ(run("tokenize -m " + kTokDir + " --text '<|im_start|>user'").out, "[151644,872]\n");
  EXPECT_EQ(run("tokenize -m " + kTokDir + " --text '<|im_start|>user' --no-special").out, "[27,91,318,4906,91,29,872]\n");
  EXPECT_EQ(run("tokenize -m " + kTokDir + " --text '<<tool_call>>' --no-special").out, "[27,151657,29]\n");
  // --file is raw bytes: the trailing newline and the NUL are tokens too.
  testing::TempDir tmp;
  const std::string file = tmp.file("in.txt");
  std::ofstream(file, std::ios::binary) << std::string("x\0y\n", 4);
  EXPECT_EQ(run("tokenize -m " + kTokDir + " --file " + file).out, "[87,188,88,198]\n");
}

TEST(Cli, TokenizeErrors) {
  testing::TempDir tmp;
  const std::string bad = tmp.file("bad.txt");
  std::ofstream(bad, std::ios::binary) << "ok\xff";
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {"tokenize -m " + kTokDir + " --file " + bad, "not valid UTF-8"},
      {"tokenize -m " + kTokDir, "--text"},
      {"tokenize -m " + kTokDir + " --text a --file " + bad, "exactly one"},
      {"tokenize -m " + kTokDir + " --file /nonexistent/x", "/nonexistent/x"},
      {"tokenize -m /nonexistent --text a", "tokenizer.json"},
      {"detokenize -m " + kTokDir + " --ids 1,x", "--ids"},
      {"detokenize -m " + kTokDir + " --ids 151936", "151936"},
      {"detokenize -m " + kModel + " --ids 1", "tokenizer.json"},
  };
  for (const Case& c : cases) {
    Result r = run(c.args);
    EXPECT_NE(r.code, 0) << c.args;
    EXPECT_TRUE(r.out.empty()) << c.args << ": stdout " << r.out;
    EXPECT_NE(r.last_err_line().find(c.expect), std::string::npos) << c.args << ": " << r.err;
  }
}

TEST(Cli, DetokenizeWritesTheExactText) {
  Result r = run("detokenize -m " + kTokDir + " --ids 151644,872,198,151645");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "<|im_start|>user\n<|im_end|>");  // no trailing newline
  EXPECT_EQ(run("detokenize -m " + kTokDir + " --ids 151644,872,198,151645 --skip-special").out, "user\n");
  EXPECT_EQ(run("detokenize -m " + kTokDir + " --ids 151657,151645 --skip-special").out, "<tool_call>");
  EXPECT_EQ(run("detokenize -m " + kTokDir + " --ids 151700,64").out, "a");  // a padding row is skipped
  EXPECT_EQ(run("detokenize -m " + kTokDir + " --ids 172,253").out, "\xEF\xBF\xBD");
  EXPECT_EQ(run("detokenize -m " + kTokDir + " --ids 172,253,246,222").out, "\xF0\x9F\x98\x80");
  // With a config.json its vocab_size is the bound.
  testing::TempDir tmp;
  std::filesystem::copy_file(kTokDir + "/tokenizer.json", tmp.path() / "tokenizer.json");
  std::ofstream(tmp.path() / "config.json") << "{\"vocab_size\": 151700}";
  EXPECT_EQ(run("detokenize -m " + tmp.path().string() + " --ids 151680,64").out, "a");
  EXPECT_NE(run("detokenize -m " + tmp.path().string() + " --ids 151700,64").code, 0);
}

TEST(Cli, GenerateTokenizesPromptAndFillsText) {
  // The random-weight model (512 ids) with a tiny byte-level tokenizer whose ids fit in it.
  testing::TempDir tmp;
  for (const auto& e : std::filesystem::directory_iterator(kModel))
    if (e.is_regular_file()) std::filesystem::copy_file(e.path(), tmp.path() / e.path().filename());
  std::filesystem::copy_file(std::string(QCODER_SOURCE_DIR) + "/tests/tokenizer/fixtures/tiny/tokenizer.json",
                             tmp.path() / "tokenizer.json");
  const std::string dir = tmp.path().string();
  const std::string ids = run("tokenize -m " + dir + " --text 'hello world'").out;
  EXPECT_EQ(ids, "[259,264]\n");
  Result by_text = run("generate -m " + dir + " -p 'hello world' -n 6 --json --ignore-eos");
  ASSERT_EQ(by_text.code, 0) << by_text.err;
  const auto j = nlohmann::json::parse(by_text.out);
  ASSERT_TRUE(j["text"].is_string()) << by_text.out;
  // The same as generating from the ids, and "text" is the detokenized ids.
  const auto j_ids = nlohmann::json::parse(run("generate -m " + dir + " --ids 259,264 -n 6 --json --ignore-eos").out);
  EXPECT_EQ(j_ids["ids"], j["ids"]);
  EXPECT_EQ(j_ids["text"], j["text"]);
  std::string id_list;
  for (const auto& id : j["ids"]) {
    if (!id_list.empty()) id_list += ',';
    id_list += std::to_string(id.get<int>());
  }
  EXPECT_EQ(run("detokenize -m " + dir + " --ids " + id_list).out, j["text"].get<std::string>());
  // Without --json the text is streamed, then one newline.
  Result plain = run("generate -m " + dir + " -p 'hello world' -n 6 --ignore-eos");
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(plain.out, j["text"].get<std::string>() + "\n");
  EXPECT_NE(run("generate -m " + dir + " -p '' -n 2").code, 0);
}

}  // namespace
}  // namespace qcoder

// ---- chat templates and tool calls (issue 4)
namespace qcoder {
namespace {

const std::string kChatData = std::string(QCODER_SOURCE_DIR) + "/tests/chat/data";

TEST(Cli, TemplatePrintsTheRenderedPromptExactly) {
  testing::TempDir tmp;
  std::ifstream in(kChatData + "/template_public.jsonl");
  int checked = 0;
  for (std::string line; std::getline(in, line) && checked < 40; ++checked) {
    const auto row = nlohmann::ordered_json::parse(line);
    nlohmann::ordered_json req = {{"messages", row["messages"]}, {"tools", row["tools"]},
                                  {"add_generation_prompt", row["add_generation_prompt"]}};
    const std::string file = tmp.file("req.json");
    std::ofstream(file) << req.dump();
    const Result r = run("template -m " + kChatData + "/qwen3-coder --request " + file);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, row["rendered"].get<std::string>()) << row["id"];
  }
  EXPECT_EQ(checked, 40);
}

TEST(Cli, TemplateChatTemplateFlagAndErrors) {
  testing::TempDir tmp;
  const std::string req = tmp.file("req.json"), tmpl = tmp.file("t.jinja");
  std::ofstream(req) << R"({"messages": [{"role": "user", "content": "hi"}], "greeting": "Hello"})";
  std::ofstream(tmpl) << "{{ greeting }}, {{ messages[0].content }}{{ '!' if add_generation_prompt }}\n";
  Result r = run("template --chat-template " + tmpl + " --request " + req);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello, hi");  // extra variables pass through; no newline added
  std::ofstream(tmpl) << "line one\n{% if true %}\n  {{ messages[0].content.nosuch() }}\n{% endif %}";
  r = run("template --chat-template " + tmpl + " --request " + req);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.last_err_line().find("line 3, column"), std::string::npos) << r.err;
  EXPECT_NE(r.last_err_line().find("UndefinedError"), std::string::npos) << r.err;
  std::ofstream(tmpl) << "{% for x in y %}";
  r = run("template --chat-template " + tmpl + " --request " + req);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.last_err_line().find("TemplateSyntaxError"), std::string::npos) << r.err;
}

TEST(Cli, ParseToolsWholeAndStreamed) {
  testing::TempDir tmp;
  const std::string tools = tmp.file("tools.json"), text = tmp.file("out.txt");
  std::ofstream(tools) << R"([{"type": "function", "function": {"name": "get_weather", "parameters":
      {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}])";
  const std::string output =
      "Checking.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
      "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>";
  std::ofstream(text, std::ios::binary) << output;
  Result r = run("parse-tools --tools " + tools + " < " + text);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            R"({"content":"Checking.\n","tool_calls":[{"type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\", \"days\": 3}"}}]})"
            "\n");
  for (const char* chunk : {"1", "5", "4096"}) {
    r = run("parse-tools --tools " + tools + " --stream --chunk-bytes " + chunk + " < " + text);
    ASSERT_EQ(r.code, 0) << r.err;
    std::string content, name, args;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      const auto d = nlohmann::json::parse(line);
      if (d.contains("content")) content += d["content"].get<std::string>();
      for (const auto& c : d.value("tool_calls", nlohmann::json::array())) {
        if (c["function"].contains("name")) name = c["function"]["name"];
        args += c["function"]["arguments"].get<std::string>();
      }
    }
    EXPECT_EQ(content, "Checking.\n");
    EXPECT_EQ(name, "get_weather");
    EXPECT_EQ(args, R"({"city": "Paris", "days": 3})");
  }
  std::ofstream(text, std::ios::binary) << "no calls here";
  r = run("parse-tools --tools " + tools + " < " + text);
  EXPECT_EQ(r.out, "{\"content\":\"no calls here\",\"tool_calls\":[]}\n");
  EXPECT_NE(run("parse-tools --tools " + text + " < " + text).code, 0);  // not JSON
}

TEST(Cli, GenerateChatNeedsAPrompt) {
  Result r = run("generate -m " + kModel + " --chat --ids 1 -n 1");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.last_err_line().find("--chat needs -p"), std::string::npos) << r.err;
  // The fixture has no chat template: the error names the missing template.
  r = run("generate -m " + kModel + " --chat -p hi -n 1");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.last_err_line().find("chat template"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qcoder
