#include <filesystem>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "flags.h"
#include "model_options.h"
#include "model/footprint.h"
#include "model/rope_scaling.h"

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

nlohmann::json rope_summary(const ModelConfig& c) {
  if (!c.rope_scaling) return nullptr;
  return {{"type", c.rope_scaling->type},
          {"factor", c.rope_scaling->factor},
          {"original_max_position_embeddings", c.rope_scaling->original_max_position_embeddings},
          {"attention_factor", rope_attention_factor(c)}};
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
  flags.add("--ctx", &ctx, "context length in tokens (0 = the usable maximum; more is an error)");
  flags.add("--kv-bits", &kv_bits, "KV cache element width: 16 (bf16), 8 or 4 (affine), 32 (float32)");
  flags.add("--json", &json, "print one JSON object");
  const ModelOptions model_options(flags);
  flags.add("-t,--threads", &threads, "threads (unused; accepted by every command)");
  if (!flags.parse(argc, argv)) return 0;
  if (ctx < 0) throw Error("--ctx must be >= 0");

  const ModelConfig config = load_model_config(model_dir, model_options.rope());
  std::unique_ptr<WeightStore> store;
  bool has_weights = false;
  for (const auto& e : std::filesystem::directory_iterator(model_dir))
    if (e.path().extension() == ".safetensors") has_weights = true;
  if (has_weights) store = WeightStore::open_dir(model_dir);
  // A context beyond what the model's positions support is refused (docs/LONG_CONTEXT.md).
  const int64_t max_ctx = usable_context(config);
  if (ctx > max_ctx)
    throw Error("--ctx " + std::to_string(ctx) + " exceeds the usable context of " + std::to_string(max_ctx) +
                " tokens (" +
                (config.rope_scaling ? "yarn factor x original_max_position_embeddings"
                                     : "max_position_embeddings; a YaRN rope_scaling block or --rope-scaling yarn "
                                       "--rope-factor F extends it") +
                ")");
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
    j["kv_format"] = kv_format_name(config, f.kv_bits);
    j["kv_group_size"] = f.kv_group_size ? nlohmann::json(f.kv_group_size) : nlohmann::json(nullptr);
    j["max_ctx"] = f.max_ctx;
    j["rope_scaling"] = rope_summary(config);
    j["weights_resident_bytes"] = f.weights_resident_bytes;
    j["weights_paged_bytes"] = f.weights_paged_bytes;
    j["weights_read_per_token"] = f.weights_read_per_token;
    j["resident_bytes"] = f.resident_bytes;
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::cout << "model        " << model_dir << "\n"
            << "weights      " << gb(f.weights_bytes) << " (" << f.weights_bytes << " bytes, "
            << (store ? "from the safetensors files" : "computed from config.json") << ")\n"
            << "kv cache     " << f.kv_bytes_per_token << " bytes/token (" << kv_format_name(config, f.kv_bits)
            << "); " << gb(f.kv_bytes_at_ctx) << " at " << f.ctx << " tokens\n"
            << "context      " << f.ctx << " of " << f.max_ctx << " usable; rope scaling "
            << describe_rope_scaling(config) << "\n"
            << "buffers      " << gb(f.activation_bytes) << "\n"
            << "total        " << gb(f.total_bytes) << "\n"
            << "paging       " << gb(f.resident_bytes) << " must stay resident (" << gb(f.weights_resident_bytes)
            << " attention/router/norms/head weights + kv cache + buffers); " << gb(f.weights_paged_bytes)
            << " of experts and embedding stay mapped, paged on demand; " << gb(f.weights_read_per_token)
            << " of weights read per token\n";
  if (f.tensor_count) std::cout << "tensors      " << *f.tensor_count << "\n";
  const auto q = quant_summary(config);
  std::cout << "quantization " << (q.is_null() ? "none" : q.dump()) << std::endl;
  return 0;
}

}  // namespace qcoder::cli
