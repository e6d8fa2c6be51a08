// Shared by the tokenizer tests: the committed Qwen3-Coder tokenizer folder (a copy of
// ../shared/data/qwen3-coder; tokenizer.json sha256 aeb13307..., the file the references
// were made from), loaded once per test binary, and JSONL reading.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace qcoder::testing_tok {

inline const std::string kFixtures = std::string(QCODER_SOURCE_DIR) + "/tests/tokenizer/fixtures";
inline const std::string kQwenDir = kFixtures + "/qwen3-coder";

inline const Tokenizer& qwen() {
  static const std::unique_ptr<Tokenizer> tok = Tokenizer::load(kQwenDir);
  return *tok;
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A fresh folder under $TMPDIR (or /tmp), removed on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/qcoder_tok_XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::vector<int32_t> ids_of(const nlohmann::json& j) {
  return j.get<std::vector<int32_t>>();
}

// A small but complete tokenizer.json of the Qwen kind: the 256 byte tokens (ids 0-255, in
// byte order), merges of "a b" pairs given as byte strings (each merged token gets the next
// id), then added tokens {content, special}. legacy_merges writes merges as "a b" strings.
struct TinyAdded {
  std::string content;
  bool special;
};
nlohmann::json tiny_tokenizer_json(const std::vector<std::pair<std::string, std::string>>& merges,
                                   const std::vector<TinyAdded>& added, bool legacy_merges = false);
// The same, written to DIR/tokenizer.json.
void write_tokenizer(const std::string& dir, const nlohmann::json& j);

}  // namespace qcoder::testing_tok
