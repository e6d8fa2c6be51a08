#include "parity/parity_fixture.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/model.h"

namespace qcoder::parity {
namespace fs = std::filesystem;
namespace {

template <typename T>
std::vector<T> read_tensor(const SafetensorsFile& f, const std::string& name, DType want) {
  auto it = f.tensors().find(name);
  if (it == f.tensors().end()) throw Error(f.path() + ": missing " + name);
  const TensorInfo& t = it->second;
  if (t.dtype != want) throw Error(f.path() + ": " + name + " has the wrong dtype");
  std::vector<T> out(static_cast<size_t>(t.numel()));
  std::memcpy(out.data(), t.data, t.nbytes);
  return out;
}

std::vector<std::string> dirs_with_reference(const fs::path& root) {
  std::vector<std::string> out;
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root))
    if (fs::exists(e.path() / "ref" / "reference.json")) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Largest |a - b| over a row.
double max_abs_diff(const float* a, const float* b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

double row_std(const float* r, int64_t n) {
  double mean = 0, ss = 0;
  for (int64_t i = 0; i < n; ++i) mean += r[i];
  mean /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) ss += (r[i] - mean) * (r[i] - mean);
  return std::sqrt(ss / static_cast<double>(n));
}

int64_t argmax(const float* r, int64_t n) {
  return std::max_element(r, r + n) - r;  // first (lowest) index on ties, as MLX
}

// The two largest entries (first index on ties).
std::array<int64_t, 2> top2(const float* r, int64_t n) {
  std::array<int64_t, 2> best = {0, n > 1 ? 1 : 0};
  if (n > 1 && r[1] > r[0]) best = {1, 0};
  for (int64_t i = 2; i < n; ++i) {
    if (r[i] > r[best[0]]) best = {i, best[0]};
    else if (r[i] > r[best[1]]) best[1] = i;
  }
  return best;
}

}  // namespace

FixtureRef load_fixture(const std::string& dir) {
  FixtureRef fx;
  fx.dir = dir;
  std::ifstream in(fs::path(dir) / "ref" / "reference.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  fx.name = j.at("name").get<std::string>();
  fx.compute_dtype = j.at("compute_dtype").get<std::string>();
  fx.vocab = j.at("vocab_size").get<int64_t>();
  fx.layers = j.at("num_layers").get<int64_t>();
  fx.top_k = j.at("top_k").get<int64_t>();
  auto st = SafetensorsFile::open((fs::path(dir) / "ref" / "reference.safetensors").string());
  for (const auto& p : j.at("prompts")) {
    PromptRef r;
    r.key = p.at("key").get<std::string>();
    r.ids = read_tensor<int32_t>(*st, r.key + ".ids", DType::kI32);
    r.greedy = read_tensor<int32_t>(*st, r.key + ".greedy", DType::kI32);
    r.greedy_margin = read_tensor<float>(*st, r.key + ".greedy_margin", DType::kF32);
    r.positions = read_tensor<int32_t>(*st, r.key + ".positions", DType::kI32);
    r.mlx_logits = read_tensor<float>(*st, r.key + ".mlx_logits", DType::kF32);
    r.f64_logits = read_tensor<float>(*st, r.key + ".f64_logits", DType::kF32);
    r.mlx_routes = read_tensor<int32_t>(*st, r.key + ".mlx_routes", DType::kI32);
    r.f64_routes = read_tensor<int32_t>(*st, r.key + ".f64_routes", DType::kI32);
    fx.prompts.push_back(std::move(r));
  }
  return fx;
}

bool load_kv_reference(const FixtureRef& fx, const std::string& format, KvReference* out) {
  const fs::path path = fs::path(fx.dir) / "ref" / ("kv_" + format + ".safetensors");
  if (!fs::exists(path)) return false;
  auto st = SafetensorsFile::open(path.string());
  out->format = format;
  out->logits.clear();
  out->routes.clear();
  for (const PromptRef& p : fx.prompts) {
    out->logits.push_back(read_tensor<float>(*st, p.key + ".f64_logits", DType::kF32));
    out->routes.push_back(read_tensor<int32_t>(*st, p.key + ".f64_routes", DType::kI32));
    if (out->logits.back().size() != p.f64_logits.size() ||
        out->routes.back().size() != p.f64_routes.size())
      throw Error(path.string() + ": " + p.key +
                  " does not match the rows of ref/reference.safetensors");
  }
  return true;
}

ParityStats run_parity(const FixtureRef& fx, int threads, KvFormat kv, bool fast) {
  auto model = Model::load(fx.dir);
  model->set_fast_numerics(fast);
  ThreadPool pool(threads);
  const int64_t V = model->config().vocab_size, L = fx.layers, k = fx.top_k;
  if (V != fx.vocab) throw Error(fx.dir + ": vocab mismatch between config and reference");
  ParityStats s;
  s.route_flips_mlx.assign(static_cast<size_t>(L), 0);
  s.route_flips_f64.assign(static_cast<size_t>(L), 0);
  double sum_f64 = 0, sum_mlx = 0, sum_mlx_f64 = 0;
  for (const PromptRef& p : fx.prompts) {
    std::vector<int32_t> seq = p.ids;
    seq.insert(seq.end(), p.greedy.begin(), p.greedy.end() - 1);
    KvCache cache(model->config(), static_cast<int64_t>(seq.size()), kv);
    SequenceInput in{seq, &cache, LogitsMode::kAll};
    SequenceOutput out;
    ForwardTrace trace;
    model->forward({&in, 1}, {&out, 1}, pool, &trace);
    const int64_t R = static_cast<int64_t>(p.positions.size());
    const int64_t n_prompt = static_cast<int64_t>(p.ids.size());
    for (int64_t i = 0; i < R; ++i) {
      const int64_t pos = p.positions[i];
      const float* q = &out.logits[pos * V];
      const float* f = &p.f64_logits[i * V];
      const float* m = &p.mlx_logits[i * V];
      const double sigma = row_std(f, V);
      const double e_f = max_abs_diff(q, f, V) / sigma, e_m = max_abs_diff(q, m, V) / sigma;
      const double e_mf = max_abs_diff(m, f, V) / sigma;
      s.max_err_f64 = std::max(s.max_err_f64, e_f);
      s.max_err_mlx = std::max(s.max_err_mlx, e_m);
      s.mlx_max_err_f64 = std::max(s.mlx_max_err_f64, e_mf);
      sum_f64 += e_f;
      sum_mlx += e_m;
      sum_mlx_f64 += e_mf;
      ++s.rows;
      if (argmax(q, V) == argmax(m, V)) ++s.top1_agree_mlx;
      if (argmax(q, V) == argmax(f, V)) ++s.top1_agree_f64;
      if (argmax(m, V) == argmax(f, V)) ++s.mlx_top1_agree_f64;
      // mlx-lm's error |mlx - f64| on the contenders (mlx's and f64's top two tokens): it can
      // swap two tokens whose logits differ by up to twice that.
      const auto ft = top2(f, V);
      double contender_err = 0;
      for (int64_t t : top2(m, V)) contender_err = std::max(contender_err, std::fabs(static_cast<double>(m[t]) - f[t]));
      for (int64_t t : ft) contender_err = std::max(contender_err, std::fabs(static_cast<double>(m[t]) - f[t]));
      if (static_cast<double>(f[ft[0]]) - f[ft[1]] > 2.0 * contender_err) {
        ++s.decisive_rows;
        if (argmax(q, V) == ft[0]) ++s.decisive_agree;
      }
      for (int64_t l = 0; l < L; ++l) {
        std::vector<int32_t> mine(&trace.routes[l][pos * k], &trace.routes[l][(pos + 1) * k]);
        const int32_t* mr = &p.mlx_routes[(l * R + i) * k];
        const int32_t* fr = &p.f64_routes[(l * R + i) * k];
        if (!std::equal(mine.begin(), mine.end(), mr)) ++s.route_flips_mlx[l];
        if (!std::equal(mine.begin(), mine.end(), fr)) ++s.route_flips_f64[l];
      }
      // Greedy step j is predicted at position n_prompt - 1 + j. It is compared unless mlx-lm's
      // own top-2 margin is within its bf16 error on that decision (twice contender_err).
      // There mlx-lm's choice is decided by bf16 rounding, which no float32 engine can be asked
      // to repeat.
      const int64_t j = pos - (n_prompt - 1);
      if (j >= 0 && j < static_cast<int64_t>(p.greedy.size())) {
        ++s.greedy_steps;
        const double tol = 2.0 * contender_err;
        if (p.greedy_margin[j] > tol) {
          ++s.greedy_compared;
          if (argmax(q, V) == p.greedy[j]) ++s.greedy_agree;
        }
      }
    }
  }
  if (s.rows > 0) {
    s.mean_err_f64 = sum_f64 / static_cast<double>(s.rows);
    s.mean_err_mlx = sum_mlx / static_cast<double>(s.rows);
    s.mlx_mean_err_f64 = sum_mlx_f64 / static_cast<double>(s.rows);
  }
  return s;
}

std::string format_stats(const FixtureRef& fx, const ParityStats& s) {
  std::ostringstream os;
  os.setf(std::ios::scientific);
  os.precision(2);
  os << fx.name << " (" << fx.compute_dtype << ", " << s.rows << " rows): "
     << "qcoder-f64 max " << s.max_err_f64 << " mean " << s.mean_err_f64 << " sigma; "
     << "mlx-f64 max " << s.mlx_max_err_f64 << " mean " << s.mlx_mean_err_f64 << "; "
     << "qcoder-mlx max " << s.max_err_mlx << " mean " << s.mean_err_mlx << "; ";
  os << "top1 " << s.top1_agree_mlx << "/" << s.rows << " (vs f64: qcoder " << s.top1_agree_f64 << ", mlx "
     << s.mlx_top1_agree_f64 << "; decisive rows " << s.decisive_agree << "/" << s.decisive_rows
     << "); route flips vs mlx per layer [";
  for (size_t l = 0; l < s.route_flips_mlx.size(); ++l) os << (l ? "," : "") << s.route_flips_mlx[l];
  os << "] vs f64 [";
  for (size_t l = 0; l < s.route_flips_f64.size(); ++l) os << (l ? "," : "") << s.route_flips_f64[l];
  os << "]; greedy " << s.greedy_agree << "/" << s.greedy_compared << " agree, " << s.greedy_compared
     << "/" << s.greedy_steps << " compared";
  return os.str();
}

std::vector<std::string> committed_fixture_dirs() {
  return dirs_with_reference(fs::path(QCODER_SOURCE_DIR) / "tests/fixtures/models");
}

std::vector<std::string> live_fixture_dirs() {
  const char* env = std::getenv("QCODER_LIVE_FIXTURES");
  if (!env || !*env) return {};
  return dirs_with_reference(env);
}

}  // namespace qcoder::parity
