// Validated, memory-mapped safetensors files and multi-shard weight sets.
//
// Nothing is read up front beyond the JSON headers: tensor data stays in the mapping and is
// paged in when a kernel touches it. Data may be unaligned (MLX writes no header padding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace qcoder {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapping; may be unaligned
  size_t nbytes = 0;
  std::string file;  // path of the file holding it, for error messages

  int64_t numel() const;
  int ndim() const { return static_cast<int>(shape.size()); }
  std::string shape_string() const;  // "[160, 2560, 768]"
};

// Header length limit, as MLX's reader (it rejects >= 1e8 bytes).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

class SafetensorsFile {
 public:
  // Maps and validates the whole header: 8-byte length within limits and inside the file,
  // JSON object, known dtypes, non-negative shapes, offsets inside the data buffer,
  // end - begin == numel * dtype size, no overlapping tensors, string metadata.
  // Throws qcoder::Error naming the file (and the tensor) on any violation.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  explicit SafetensorsFile(std::unique_ptr<MappedFile> file) : file_(std::move(file)) {}
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All weights of a model folder. Shards come from model.safetensors.index.json when present
// (every referenced file must exist and hold the tensors the index assigns to it), otherwise
// from every *.safetensors file in the folder (as mlx-lm globs model*.safetensors).
class WeightStore {
 public:
  static std::unique_ptr<WeightStore> open_dir(const std::string& dir);
  // For tests and tools: a store over explicit files.
  static std::unique_ptr<WeightStore> open_files(const std::vector<std::string>& paths);

  // nullptr when absent.
  const TensorInfo* find(const std::string& name) const;
  // Throws qcoder::Error "missing tensor NAME in DIR" when absent.
  const TensorInfo& get(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }

  const std::map<std::string, const TensorInfo*>& all() const { return index_; }
  size_t tensor_count() const { return index_.size(); }
  uint64_t total_bytes() const;  // sum of tensor data sizes
  const std::string& dir() const { return dir_; }
  // The mapped files, in the order they were opened.
  std::vector<std::string> file_paths() const;

 private:
  // Takes ownership and indexes its tensors; throws when a name is already in another file.
  void add_file(std::unique_ptr<SafetensorsFile> file);

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> index_;
};

}  // namespace qcoder
