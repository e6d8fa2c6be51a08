// A read-only memory mapping of a whole file. Weights stay in the page cache and are paged
// in on first touch, so a model larger than RAM can still be opened.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qcoder {

class MappedFile {
 public:
  // Throws qcoder::Error naming the path when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace qcoder
