// Command-line flags, each declared once with its name, default and help text.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace qcoder::cli {

class FlagSet {
 public:
  FlagSet(std::string command, std::string summary);

  // names: "-m,--model" or "--out". The target keeps its value as the default.
  void add(const std::string& names, std::string* target, const std::string& help, bool required = false);
  void add(const std::string& names, int64_t* target, const std::string& help, bool required = false);
  void add(const std::string& names, double* target, const std::string& help);
  void add(const std::string& names, bool* target, const std::string& help);  // a switch

  // Parses argv (after the command name). Returns false when --help was given (help printed
  // to stdout); throws qcoder::Error on unknown flags, missing values or missing required ones.
  bool parse(int argc, char** argv);
  bool given(const std::string& long_name) const;
  std::string help() const;

 private:
  struct Flag {
    std::vector<std::string> names;
    std::string help, default_text, kind;
    bool required = false, is_switch = false, seen = false;
    std::function<void(const std::string&)> set;
  };
  Flag& declare(const std::string& names, const std::string& help, const std::string& kind);

  std::string command_, summary_;
  std::vector<Flag> flags_;
};

// "1,2,3" -> ids; throws qcoder::Error on anything that is not a non-negative int32.
std::vector<int32_t> parse_id_list(const std::string& text);

// "4G", "512M", "65536" -> bytes (K/M/G/T are powers of 1024); throws qcoder::Error naming
// `flag` on anything else.
uint64_t parse_byte_size(const std::string& flag, const std::string& text);

}  // namespace qcoder::cli
