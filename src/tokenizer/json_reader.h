// A strict, allocation-light JSON reader for the two big members of tokenizer.json (the
// 151k-entry vocab and merges), which a DOM parser takes several hundred milliseconds to
// build. Everything else in the file is small and goes to nlohmann::json via raw().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qcoder::tok {

class JsonReader {
 public:
  // source names the file in error messages.
  JsonReader(std::string_view text, std::string source) : text_(text), source_(std::move(source)) {}

  // Throws qcoder::Error "SOURCE: byte N: what".
  [[noreturn]] void fail(const std::string& what) const;

  void skip_ws();
  bool at_end() { return skip_ws(), pos_ >= text_.size(); }
  // Consumes c (after white space) or fails.
  void expect(char c);
  // Consumes c (after white space) when it is next.
  bool consume(char c);
  // Next non-space character, without consuming it (0 at the end).
  char peek();

  // Appends the decoded string (escapes resolved, UTF-8 checked) to out.
  void read_string(std::string& out);
  int64_t read_int();
  // Skips one value and returns its raw text (for nlohmann::json::parse).
  std::string_view raw();

  // Iterates an object: bool first = true; expect('{'); while (next_key(key, first)) { read the
  // value }. Arrays likewise with expect('[') and next_element(first).
  bool next_key(std::string& key, bool& first);
  bool next_element(bool& first);

  size_t pos() const { return pos_; }

 private:
  void skip_value(int depth);
  void skip_number();

  std::string_view text_;
  std::string source_;
  size_t pos_ = 0;
};

}  // namespace qcoder::tok
