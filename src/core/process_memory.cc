#include "core/process_memory.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace qcoder {
namespace {

uint64_t kib_field(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(key.size())) * 1024;
  return 0;
}

}  // namespace

uint64_t mapped_file_rss(const std::vector<std::string>& paths) {
  std::set<std::string> wanted;
  for (const std::string& p : paths) {
    std::error_code ec;
    const auto c = std::filesystem::canonical(p, ec);
    wanted.insert(ec ? p : c.string());
  }
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool counting = false;
  uint64_t total = 0;
  while (std::getline(in, line)) {
    // A mapping header: "start-end perms offset dev inode [path]"; field lines start with a
    // capitalized key and a colon.
    const size_t colon = line.find(':');
    const size_t space = line.find(' ');
    const bool header = space != std::string::npos && (colon == std::string::npos || colon > space) &&
                        line.find('-') < space;
    if (header) {
      std::istringstream fields(line);
      std::string range, perms, offset, dev, inode, path;
      fields >> range >> perms >> offset >> dev >> inode;
      std::getline(fields >> std::ws, path);
      counting = !path.empty() && wanted.count(path) > 0;
    } else if (counting && line.rfind("Rss:", 0) == 0) {
      total += std::stoull(line.substr(4)) * 1024;
    }
  }
  return total;
}

uint64_t current_rss_bytes() { return kib_field("/proc/self/status", "VmRSS:"); }
uint64_t peak_rss_bytes() { return kib_field("/proc/self/status", "VmHWM:"); }
uint64_t available_memory_bytes() { return kib_field("/proc/meminfo", "MemAvailable:"); }

}  // namespace qcoder
