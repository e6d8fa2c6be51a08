// Test helpers that write safetensors files the way MLX does: compact JSON header from
// nlohmann::json::dump() (keys sorted), __metadata__ {"format": "mlx"}, no padding, tensors
// back to back. Also a raw writer for hand-made (corrupt) headers.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace qcoder::testing {

struct TestTensor {
  std::string name;
  std::string dtype;  // safetensors spelling
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

// 8-byte little-endian length + header text + data, as a byte string.
inline std::string raw_safetensors(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Data is laid out in the order given (not the sorted header order), like MLX's writer.
inline std::string mlx_safetensors(const std::vector<TestTensor>& tensors,
                                   const std::map<std::string, std::string>& metadata = {
                                       {"format", "mlx"}}) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = metadata;
  std::string data;
  for (const TestTensor& t : tensors) {
    const uint64_t begin = data.size();
    data.append(t.data.begin(), t.data.end());
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {begin, static_cast<uint64_t>(data.size())}}};
  }
  return raw_safetensors(header.dump(), data);
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// A fresh folder under $TMPDIR (or /tmp), removed on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/qcoder_io_XXXXXX";
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
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace qcoder::testing
