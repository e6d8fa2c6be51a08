// Shared by the tokenizer fuzz targets: the committed Qwen3-Coder tokenizer, loaded once.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace qcoder::fuzz {

// The repository root, from this file's path (tests/fuzz/...): fuzz binaries get no defines.
inline std::string source_dir() {
  const std::string_view file = __FILE__;
  return std::string(file.substr(0, file.rfind("/tests/fuzz/")));
}

inline const Tokenizer& qwen_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok =
      Tokenizer::load(source_dir() + "/tests/tokenizer/fixtures/qwen3-coder");
  return *tok;
}

// Aborts with a message: libFuzzer reports it with the input.
[[noreturn]] inline void fail(const char* what) {
  __builtin_fprintf(stderr, "tokenizer fuzz invariant broken: %s\n", what);
  std::abort();
}

}  // namespace qcoder::fuzz
