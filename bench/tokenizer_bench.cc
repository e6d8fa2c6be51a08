// Encodes a list of files with qcoder's tokenizer on one thread and reports load time, MB/s
// and memory as one JSON line. Driven by bench/tokenizer_bench.py, which runs Hugging Face
// tokenizers on the same files in the same run and checks that the ids are identical.
//
//   tokenizer_bench -m MODEL_DIR --list FILES.txt [--runs 5] [--ids-out ids.bin]
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// This thread's CPU time: on a busy machine the wall clock also counts other processes' turns.
double cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Resident and peak resident set size in bytes (Linux /proc/self/status).
std::pair<size_t, size_t> rss_bytes() {
  std::ifstream in("/proc/self/status");
  size_t rss = 0, hwm = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stoull(line.substr(6)) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stoull(line.substr(6)) * 1024;
  }
  return {rss, hwm};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw qcoder::Error(path + ": cannot read");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, list_path, ids_out;
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw qcoder::Error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-m")
      model_dir = value();
    else if (a == "--list")
      list_path = value();
    else if (a == "--runs")
      runs = std::stoi(value());
    else if (a == "--ids-out")
      ids_out = value();
    else {
      std::cerr
          << "usage: tokenizer_bench -m MODEL_DIR --list FILES.txt [--runs N] [--ids-out F]\n";
      return 2;
    }
  }
  try {
    std::vector<std::string> texts;
    size_t total_bytes = 0;
    {
      std::ifstream list(list_path);
      if (!list) throw qcoder::Error(list_path + ": cannot read");
      for (std::string path; std::getline(list, path);)
        if (!path.empty()) total_bytes += texts.emplace_back(read_file(path)).size();
    }
    const size_t rss_before = rss_bytes().first;
    std::vector<double> load_s, load_cpu_s;
    std::unique_ptr<qcoder::Tokenizer> tok;
    for (int r = 0; r < std::max(runs, 1); ++r) {
      tok.reset();
      const double t0 = now_s(), c0 = cpu_s();
      tok = qcoder::Tokenizer::load(model_dir);
      load_s.push_back(now_s() - t0);
      load_cpu_s.push_back(cpu_s() - c0);
    }
    const size_t rss_loaded = rss_bytes().first;

    std::vector<double> encode_s, encode_cpu_s;
    std::vector<int32_t> all_ids;
    size_t n_ids = 0;
    for (int r = 0; r < std::max(runs, 1); ++r) {
      n_ids = 0;
      const double t0 = now_s(), c0 = cpu_s();
      for (const std::string& t : texts) {
        const std::vector<int32_t> ids = tok->encode(t);
        n_ids += ids.size();
        if (r == 0 && !ids_out.empty()) all_ids.insert(all_ids.end(), ids.begin(), ids.end());
      }
      encode_s.push_back(now_s() - t0);
      encode_cpu_s.push_back(cpu_s() - c0);
    }
    if (!ids_out.empty()) {
      std::ofstream out(ids_out, std::ios::binary);
      out.write(reinterpret_cast<const char*>(all_ids.data()),
                static_cast<std::streamsize>(all_ids.size() * 4));
    }
    std::vector<double> mbps, cpu_mbps;
    for (double s : encode_s) mbps.push_back(static_cast<double>(total_bytes) / s / 1e6);
    for (double s : encode_cpu_s) cpu_mbps.push_back(static_cast<double>(total_bytes) / s / 1e6);
    const auto [rss_end, peak] = rss_bytes();
    std::printf(
        "{\"files\": %zu, \"bytes\": %zu, \"ids\": %zu, \"load_ms_median\": %.1f, \"load_ms_min\": "
        "%.1f, "
        "\"load_cpu_ms_median\": %.1f, \"encode_s_median\": %.4f, \"mb_per_s_median\": %.2f, "
        "\"cpu_mb_per_s_median\": %.2f, \"mb_per_s_all\": [",
        texts.size(), total_bytes, n_ids, median(load_s) * 1e3,
        *std::min_element(load_s.begin(), load_s.end()) * 1e3, median(load_cpu_s) * 1e3,
        median(encode_s), median(mbps), median(cpu_mbps));
    for (size_t i = 0; i < mbps.size(); ++i) std::printf("%s%.2f", i ? ", " : "", mbps[i]);
    std::printf(
        "], \"tables_bytes\": %zu, \"rss_tokenizer_bytes\": %zu, \"rss_end_bytes\": %zu, "
        "\"peak_rss_bytes\": %zu}\n",
        tok->memory_bytes(), rss_loaded - rss_before, rss_end, peak);
    (void)rss_end;
  } catch (const std::exception& e) {
    std::cerr << "tokenizer_bench: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
