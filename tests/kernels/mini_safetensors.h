// A tiny self-contained safetensors reader for the kernel tests (independent of src/io, so the
// kernels are tested against MLX's files without trusting our own reader). Reads the whole file.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace qcoder::test {

struct StTensor {
  std::string dtype;  // "U32", "BF16", ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // not aligned
  size_t nbytes = 0;
};

class MiniSafetensors {
 public:
  explicit MiniSafetensors(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    bytes_.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (bytes_.size() < 8) throw std::runtime_error(path + ": too short");
    uint64_t n = 0;
    for (int k = 0; k < 8; ++k) n |= static_cast<uint64_t>(bytes_[k]) << (8 * k);
    if (n > bytes_.size() - 8) throw std::runtime_error(path + ": bad header length");
    const auto header = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + n);
    const uint8_t* base = bytes_.data() + 8 + n;
    const size_t data_size = bytes_.size() - 8 - n;
    for (const auto& [name, v] : header.items()) {
      if (name == "__metadata__") {
        metadata_ = v;
        continue;
      }
      StTensor t;
      t.dtype = v.at("dtype").get<std::string>();
      t.shape = v.at("shape").get<std::vector<int64_t>>();
      const auto off = v.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2 || off[0] > off[1] || off[1] > data_size)
        throw std::runtime_error(path + ": bad offsets for " + name);
      t.data = base + off[0];
      t.nbytes = off[1] - off[0];
      tensors_[name] = t;
    }
  }

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const StTensor& at(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw std::runtime_error("no tensor " + name);
    return it->second;
  }
  const nlohmann::json& metadata() const { return metadata_; }

 private:
  std::vector<uint8_t> bytes_;
  std::map<std::string, StTensor> tensors_;
  nlohmann::json metadata_;
};

inline std::vector<float> to_f32_vector(const StTensor& t) {
  if (t.dtype != "F32") throw std::runtime_error("expected F32, got " + t.dtype);
  std::vector<float> v(t.nbytes / 4);
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

}  // namespace qcoder::test
