// Shared helpers for the engine tests: the committed q4_g64 fixture model and prompts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model_fixture.h"

namespace qcoder::testing {

inline std::string engine_fixture_dir() {
  return std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/models/q4_g64";
}

// Deterministic pseudo-random token ids in [0, vocab).
inline std::vector<int32_t> lcg_prompt(size_t n, int vocab, uint32_t seed) { return lcg_ids(n, vocab, seed); }

}  // namespace qcoder::testing
