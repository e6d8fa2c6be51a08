// Copies of a committed parity fixture model, editable for tests: tensors can be dropped,
// replaced or reshaped and config.json edited, then written back as MLX would write them.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace qcoder::testing {

// Deterministic pseudo-random token ids in [0, vocab).
inline std::vector<int32_t> lcg_ids(size_t n, int vocab, uint32_t seed) {
  std::vector<int32_t> ids(n);
  for (auto& x : ids) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<int32_t>((seed >> 8) % static_cast<uint32_t>(vocab));
  }
  return ids;
}

inline std::string fixture_dir(const std::string& name) {
  return std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}

class EditableModel {
 public:
  explicit EditableModel(const std::string& fixture) {
    std::ifstream in(fixture_dir(fixture) + "/config.json");
    config = nlohmann::json::parse(in);
    auto store = WeightStore::open_dir(fixture_dir(fixture));
    for (const auto& [name, info] : store->all()) {
      TestTensor t;
      t.name = name;
      t.dtype = std::string(dtype_name(info->dtype));
      t.shape = info->shape;
      t.data.assign(info->data, info->data + info->nbytes);
      tensors.push_back(std::move(t));
    }
  }

  TestTensor* find(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  void drop(const std::string& name) {
    std::erase_if(tensors, [&](const TestTensor& t) { return t.name == name; });
  }

  // Writes config.json and model.safetensors into a fresh temp folder; returns its path.
  std::string write() {
    std::ofstream(dir.file("config.json")) << config.dump(2);
    write_bytes(dir.file("model.safetensors"), mlx_safetensors(tensors));
    return dir.path().string();
  }

  nlohmann::json config;
  std::vector<TestTensor> tensors;
  TempDir dir;
};

}  // namespace qcoder::testing
