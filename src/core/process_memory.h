// This process's memory as Linux reports it (/proc/self): what the weight residency policy
// and its tests check a memory budget against (RSS, not a cgroup, which a machine may lack).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qcoder {

// Resident bytes of the mappings of these files (Rss summed over /proc/self/smaps entries
// whose path is one of them; paths are compared after std::filesystem::canonical).
// 0 when /proc is unavailable.
uint64_t mapped_file_rss(const std::vector<std::string>& paths);
// VmRSS / VmHWM of /proc/self/status in bytes (0 when unavailable).
uint64_t current_rss_bytes();
uint64_t peak_rss_bytes();
// MemAvailable of /proc/meminfo in bytes: what can still be allocated without swapping or the
// OOM killer (0 when unavailable).
uint64_t available_memory_bytes();

}  // namespace qcoder
