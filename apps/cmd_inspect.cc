#include <filesystem>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "flags.h"
#include "model/footprint.h"

namespace qcoder::cli {
namespace {

std::string gb(uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

nlohmann::json quant_summary(const ModelConfig& c) {
  if (!c.quantization.present()) return nullptr;
  nlohmann::json q = nlohmann::json::object();
  if (c.quantization.global) {
    q["mode"] = std::string(quant_mode_name(c.quantization.global->mode));
    q["bits"] = c.quantization.global->bits;
    q["group_size"] = c.quantization.global->group_size;
  }
  int quantized = 0, unquantized = 0;
  for (const auto& [path, spec] : c.quantization.overrides) (spec ? quantized : unquantized)++;
  q["overrides"] = quantized;
  q["unquantized_overrides"] = unquantized;
  return q;
}

}  // namespace

int run_inspect(int argc, char** argv) {
  std::string model_dir;
  int64_t ctx = 0, kv_bits = 16, threads = 0;
  bool json = false;
  FlagSet flags("inspect",
                "Memory needed to run a model: weights, KV cache at a context length, working\n"
                "buffers. Works with the weights or with config.json alone. GB = 10^9 bytes.");
  flags.add("-m,--model", &model_dir, "model folder (config.json; weights optional)", true);
  flags.add("--ctx", &ctx, "context length in tokens (0 = the model's maximum)");
  flags.add("--kv-bits", &kv_bits, "KV cache element width: 16 (bf16), 8 or 4 (affine), 32 (float32)");
  flags.add("--json", &json, "print one JSON object");
  flags.add("-t,--threads", &threads, "threads (unused; accepted by every command)");
  if (!flags.parse(argc, argv)) return 0;
  if (ctx < 0) throw Error("--ctx must be >= 0");

  const ModelConfig config = load_model_config(model_dir);
  std::unique_ptr<WeightStore> store;
  bool has_weights = false;
  for (const auto& e : std::filesystem::directory_iterator(model_dir))
    if (e.path().extension() == ".safetensors") has_weights = true;
  if (has_weights) store = WeightStore::open_dir(model_dir);
  const Footprint f = estimate_footprint(config, store.get(), ctx, static_cast<int>(kv_bits));

  if (json) {
    nlohmann::json j;
    j["weights_bytes"] = f.weights_bytes;
    j["kv_bytes_per_token"] = f.kv_bytes_per_token;
    j["kv_bytes_at_ctx"] = f.kv_bytes_at_ctx;
    j["activation_bytes"] = f.activation_bytes;
    j["total_bytes"] = f.total_bytes;
    j["tensor_count"] = f.tensor_count ? nlohmann::json(*f.tensor_count) : nlohmann::json(nullptr);
    j["quantization"] = quant_summary(config);
    j["ctx"] = f.ctx;
    j["kv_bits"] = f.kv_bits;
    j["weights_source"] = store ? "safetensors" : "config";
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::cout << "model        " << model_dir << "\n"
            << "weights      " << gb(f.weights_bytes) << " (" << f.weights_bytes << " bytes, "
            << (store ? "from the safetensors files" : "computed from config.json") << ")\n"
            << "kv cache     " << f.kv_bytes_per_token << " bytes/token at " << f.kv_bits << " bits; "
            << gb(f.kv_bytes_at_ctx) << " at " << f.ctx << " tokens\n"
            << "buffers      " << gb(f.activation_bytes) << "\n"
            << "total        " << gb(f.total_bytes) << "\n";
  if (f.tensor_count) std::cout << "tensors      " << *f.tensor_count << "\n";
  const auto q = quant_summary(config);
  std::cout << "quantization " << (q.is_null() ? "none" : q.dump()) << std::endl;
  return 0;
}

}  // namespace qcoder::cli
