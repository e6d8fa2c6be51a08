// Errors that reach the user. Library code throws qcoder::Error with a message that names
// the file, tensor or field at fault; the CLI catches it at the boundary and prints it as
// the last stderr line. Programmer errors use assert instead.
#pragma once

#include <stdexcept>
#include <string>

namespace qcoder {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace qcoder
