#include "flags.h"

#include <charconv>
#include <string>
#include <iostream>
#include <sstream>

#include "core/error.h"

namespace qcoder::cli {
namespace {

std::vector<std::string> split_names(const std::string& names) {
  std::vector<std::string> out;
  std::stringstream ss(names);
  for (std::string part; std::getline(ss, part, ',');) out.push_back(part);
  return out;
}

template <typename T>
T parse_number(const std::string& flag, const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty())
    throw Error("flag " + flag + ": invalid number \"" + text + "\"");
  return value;
}

}  // namespace

FlagSet::FlagSet(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

FlagSet::Flag& FlagSet::declare(const std::string& names, const std::string& help, const std::string& kind) {
  Flag f;
  f.names = split_names(names);
  f.help = help;
  f.kind = kind;
  flags_.push_back(std::move(f));
  return flags_.back();
}

void FlagSet::add(const std::string& names, std::string* target, const std::string& help, bool required) {
  Flag& f = declare(names, help, "TEXT");
  f.required = required;
  f.default_text = *target;
  f.set = [target](const std::string& v) { *target = v; };
}

void FlagSet::add(const std::string& names, int64_t* target, const std::string& help, bool required) {
  Flag& f = declare(names, help, "N");
  f.required = required;
  f.default_text = std::to_string(*target);
  const std::string name = f.names.back();
  f.set = [target, name](const std::string& v) { *target = parse_number<int64_t>(name, v); };
}

void FlagSet::add(const std::string& names, double* target, const std::string& help) {
  Flag& f = declare(names, help, "X");
  std::ostringstream os;
  os << *target;
  f.default_text = os.str();
  const std::string name = f.names.back();
  f.set = [target, name](const std::string& v) { *target = parse_number<double>(name, v); };
}

void FlagSet::add(const std::string& names, bool* target, const std::string& help) {
  Flag& f = declare(names, help, "");
  f.is_switch = true;
  f.set = [target](const std::string&) { *target = true; };
}

bool FlagSet::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << help();
      return false;
    }
    std::string value;
    bool has_inline = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    Flag* flag = nullptr;
    for (Flag& f : flags_)
      for (const std::string& n : f.names)
        if (n == arg) flag = &f;
    if (!flag) throw Error("qcoder " + command_ + ": unknown argument \"" + arg + "\" (see --help)");
    if (flag->is_switch) {
      if (has_inline) throw Error("flag " + arg + " takes no value");
    } else if (!has_inline) {
      if (i + 1 >= argc) throw Error("flag " + arg + " needs a value");
      value = argv[++i];
    }
    flag->set(value);
    flag->seen = true;
  }
  for (const Flag& f : flags_)
    if (f.required && !f.seen) throw Error("qcoder " + command_ + ": missing required flag " + f.names.back());
  return true;
}

bool FlagSet::given(const std::string& long_name) const {
  for (const Flag& f : flags_)
    for (const std::string& n : f.names)
      if (n == long_name) return f.seen;
  return false;
}

std::string FlagSet::help() const {
  std::ostringstream os;
  os << "usage: qcoder " << command_ << " [flags]\n" << summary_ << "\n\nflags:\n";
  for (const Flag& f : flags_) {
    std::string names;
    for (const std::string& n : f.names) names += (names.empty() ? "" : ", ") + n;
    if (!f.kind.empty()) names += " " + f.kind;
    os << "  " << names;
    if (names.size() < 26) os << std::string(26 - names.size(), ' ');
    else os << "\n" << std::string(28, ' ');
    os << f.help;
    if (f.required) os << " (required)";
    else if (!f.is_switch && !f.default_text.empty()) os << " (default: " << f.default_text << ")";
    os << "\n";
  }
  return os.str();
}

std::vector<int32_t> parse_id_list(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    const auto b = part.find_first_not_of(" \t"), e = part.find_last_not_of(" \t");
    if (b == std::string::npos) throw Error("--ids: empty entry in \"" + text + "\"");
    part = part.substr(b, e - b + 1);
    int64_t v = parse_number<int64_t>("--ids", part);
    if (v < 0 || v > INT32_MAX) throw Error("--ids: token id " + part + " out of range");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) throw Error("--ids: no token ids given");
  return ids;
}

uint64_t parse_byte_size(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  double mult = 1;
  if (unit == "K" || unit == "k" || unit == "KiB")
    mult = 1024.0;
  else if (unit == "M" || unit == "MiB")
    mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TiB")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty() || used == 0)
    throw Error("flag " + flag + ": invalid size \"" + text + "\" (e.g. 4G, 512M)");
  if (!(v >= 0) || v * mult > 1.8e19) throw Error("flag " + flag + ": size must be between 0 and 16 EiB");
  return static_cast<uint64_t>(v * mult);
}

}  // namespace qcoder::cli
