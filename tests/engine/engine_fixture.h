// Shared helpers for the engine tests: the committed q4_g64 fixture model and prompts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qcoder::testing {

inline std::string engine_fixture_dir() {
  return std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/models/q4_g64";
}

// Deterministic pseudo-random token ids in [0, vocab).
inline std::vector<int32_t> lcg_prompt(size_t n, int vocab, uint32_t seed) {
  std::vector<int32_t> ids(n);
  for (auto& x : ids) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<int32_t>((seed >> 8) % static_cast<uint32_t>(vocab));
  }
  return ids;
}

}  // namespace qcoder::testing
