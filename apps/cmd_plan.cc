// qcoder plan: where a model's parts would go on N machines and the decode speed to expect,
// from config.json (and the checkpoint's headers when present). Shares the memory accounting
// of `qcoder inspect` (model/footprint.h) and the shard plans of `--parallel`.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "commands.h"
#include "core/error.h"
#include "flags.h"
#include "model/cluster_estimate.h"
#include "model/footprint.h"
#include "model/shard_plan.h"

namespace qcoder::cli {
namespace {

std::string gb(double bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  return buf;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

struct Option {
  ParallelMode mode;
  ShardPlan plan;
  std::string error;  // the plan is impossible
};

}  // namespace

int run_plan(int argc, char** argv) {
  std::string model_dir, parallel = "all";
  int64_t nodes = 0, ctx = 0, kv_bits = 16, threads = 0;
  double mem_gb = 0, bandwidth = 100, latency_us = 50, link_gbps = 10;
  bool json = false;
  FlagSet flags("plan",
                "Places a model on N machines (one rank each) and estimates decode speed from the\n"
                "rooflines: per token, every rank reads its active weights and KV cache at the\n"
                "memory bandwidth; messages cost the link latency plus bytes over its bandwidth.\n"
                "Needs only config.json. GB = 10^9 bytes. See docs/DISTRIBUTED.md.");
  flags.add("-m,--model", &model_dir, "model folder (config.json; weights optional)", true);
  flags.add("--nodes", &nodes, "machines", true);
  flags.add("--mem-per-node", &mem_gb, "memory of one machine, GB (must be given)");
  flags.add("--bandwidth", &bandwidth, "memory bandwidth of one machine, GB/s");
  flags.add("--link-latency-us", &latency_us,
            "one message between machines, microseconds (RDMA: ~2-3)");
  flags.add("--link-gbps", &link_gbps, "link bandwidth between machines, Gbit/s (RDMA: 100-400)");
  flags.add("--ctx", &ctx, "context length the KV cache must hold (0 = the model's maximum)");
  flags.add("--kv-bits", &kv_bits,
            "KV cache element width: 16 (bf16), 8 or 4 (affine), 32 (float32)");
  flags.add("--parallel", &parallel, "pipeline, expert, auto or all (all: print both)");
  flags.add("--json", &json, "print one JSON object");
  flags.add("-t,--threads", &threads, "threads (unused; accepted by every command)");
  if (!flags.parse(argc, argv)) return 0;
  if (!flags.given("--mem-per-node"))
    throw Error("qcoder plan: missing required flag --mem-per-node");
  if (nodes < 1 || nodes > 4096) throw Error("--nodes must be in 1..4096");
  if (!(mem_gb > 0)) throw Error("--mem-per-node must be > 0");
  if (!(bandwidth > 0) || !(link_gbps > 0) || latency_us < 0)
    throw Error("--bandwidth and --link-gbps must be > 0, --link-latency-us >= 0");
  if (ctx < 0) throw Error("--ctx must be >= 0");

  const ModelConfig config = load_model_config(model_dir);
  if (ctx == 0) ctx = config.max_position_embeddings;
  kv_bytes_per_token(config, static_cast<int>(kv_bits));  // validates --kv-bits
  bool has_weights = false;
  for (const auto& e : std::filesystem::directory_iterator(model_dir))
    if (e.path().extension() == ".safetensors") has_weights = true;
  std::unique_ptr<WeightStore> store;
  if (has_weights) store = WeightStore::open_dir(model_dir);  // headers only
  const ModelBytes mb =
      store ? model_bytes_from_store(config, *store) : model_bytes_from_config(config);
  // Without the shards, the index (when present) still states the checkpoint's total size.
  std::optional<uint64_t> index_total;
  if (!store && std::filesystem::exists(model_dir + "/model.safetensors.index.json")) {
    std::ifstream in(model_dir + "/model.safetensors.index.json");
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_object() && j.contains("metadata") && j["metadata"].is_object() &&
        j["metadata"].contains("total_size") && j["metadata"]["total_size"].is_number_unsigned())
      index_total = j["metadata"]["total_size"].get<uint64_t>();
  }

  Cluster cluster;
  for (int64_t n = 0; n < nodes; ++n) {
    cluster.node_of_rank.push_back(static_cast<int>(n));
    cluster.mem_per_rank.push_back(static_cast<uint64_t>(mem_gb * 1e9));
  }
  ClusterSpec spec;
  spec.mem_bandwidth = bandwidth * 1e9;
  spec.link_latency = latency_us * 1e-6;
  spec.link_bandwidth = link_gbps * 1e9 / 8;

  PlanRequest req;
  req.ctx = ctx;
  req.kv_bits = static_cast<int>(kv_bits);
  const ShardPlan auto_plan = make_shard_plan(config, mb, cluster, req);
  std::vector<Option> options;
  std::vector<ParallelMode> modes;
  if (parallel == "all")
    modes = {ParallelMode::kPipeline, ParallelMode::kExpert};
  else if (parallel == "auto")
    modes = {auto_plan.mode};
  else
    modes = {parse_parallel_mode(parallel)};
  for (ParallelMode m : modes) {
    Option o{m, {}, {}};
    try {
      req.mode = m;
      o.plan = m == auto_plan.mode ? auto_plan : make_shard_plan(config, mb, cluster, req);
    } catch (const Error& e) {
      o.error = e.what();
    }
    options.push_back(std::move(o));
  }

  uint64_t layer_total = 0,
           active = mb.embed_row(config.vocab_size) + mb.head_matrix() + mb.final_norm;
  for (const LayerBytes& l : mb.layers) {
    layer_total += l.total();
    active += l.active(config.num_experts_per_tok, config.num_experts);
  }
  const uint64_t kv_token = kv_bytes_per_token(config, static_cast<int>(kv_bits));

  nlohmann::ordered_json out;
  out["weights_bytes"] = mb.total();
  out["weights_source"] = store ? "safetensors" : "config";
  if (index_total) out["index_total_size"] = *index_total;
  out["active_bytes_per_token"] = active;
  out["kv_bytes_per_token"] = kv_token;
  out["ctx"] = ctx;
  out["auto"] = parallel_mode_name(auto_plan.mode);
  out["auto_reason"] = auto_plan.reason;
  std::ostringstream text;
  text << "model       " << model_dir << " (weights "
       << (store ? "from the safetensors headers" : "computed from config.json") << ")\n"
       << "weights     " << gb(static_cast<double>(mb.total())) << ": embedding "
       << gb(static_cast<double>(mb.embed)) << ", " << mb.layers.size() << " layers "
       << gb(static_cast<double>(layer_total)) << ", lm_head "
       << (mb.tied ? "tied" : gb(static_cast<double>(mb.head))) << "\n";
  if (index_total)
    text << "index       total_size " << gb(static_cast<double>(*index_total)) << "\n";
  text << "kv cache    " << kv_token << " bytes/token at " << kv_bits << " bits; "
       << gb(static_cast<double>(kv_token) * static_cast<double>(ctx)) << " at " << ctx
       << " tokens\n"
       << "per token   " << gb(static_cast<double>(active)) << " of weights read at batch 1 ("
       << config.num_experts_per_tok << " of " << config.num_experts << " experts)\n"
       << "cluster     " << nodes << " node" << (nodes == 1 ? "" : "s") << " x " << gb(mem_gb * 1e9)
       << ", " << fixed(bandwidth, 0) << " GB/s memory each; links " << fixed(link_gbps, 0)
       << " Gb/s, " << fixed(latency_us, 1) << " us\n"
       << "auto        " << parallel_mode_name(auto_plan.mode) << " (" << auto_plan.reason << ")\n";

  for (const Option& o : options) {
    nlohmann::ordered_json jo;
    jo["mode"] = parallel_mode_name(o.mode);
    text << "\n"
         << parallel_mode_name(o.mode) << (o.mode == auto_plan.mode ? " (auto's choice)" : "")
         << "\n";
    if (!o.error.empty()) {
      jo["error"] = o.error;
      text << "  not possible: " << o.error << "\n";
      out["plans"].push_back(jo);
      continue;
    }
    bool all_fit = true;
    for (int r = 0; r < o.plan.world_size(); ++r) {
      const RankShard sh = rank_shard(o.plan, config, r);
      const RankFootprint f = rank_footprint(config, mb, sh, ctx, static_cast<int>(kv_bits));
      const bool fits = static_cast<double>(f.total()) <= mem_gb * 1e9;
      all_fit = all_fit && fits;
      const auto [e0, e1] = sh.expert_range(sh.layer_begin);
      std::ostringstream holds;
      holds << "layers " << sh.layer_begin << "-" << sh.layer_end - 1;
      if (sh.splits_experts())
        holds << ", experts " << e1 - e0 << " of " << config.num_experts << " per layer, KV heads "
              << sh.kv_head_end - sh.kv_head_begin << " of " << config.num_key_value_heads;
      if (sh.embed) holds << ", embedding";
      if (sh.head) holds << ", lm_head";
      text << "  node " << r << ": " << holds.str() << "\n          weights "
           << gb(static_cast<double>(f.weights)) << " + kv " << gb(static_cast<double>(f.kv))
           << " + buffers " << gb(static_cast<double>(f.activations)) << " = "
           << gb(static_cast<double>(f.total())) << (fits ? "  fits" : "  DOES NOT FIT") << "\n";
      jo["nodes"].push_back({{"layer_begin", sh.layer_begin},
                             {"layer_end", sh.layer_end},
                             {"experts_per_layer", e1 - e0},
                             {"kv_heads", sh.kv_head_end - sh.kv_head_begin},
                             {"embedding", sh.embed},
                             {"lm_head", sh.head},
                             {"weights_bytes", f.weights},
                             {"kv_bytes", f.kv},
                             {"total_bytes", f.total()},
                             {"fits", fits}});
    }
    jo["fits"] = all_fit;
    for (int64_t at : {int64_t{0}, ctx}) {
      const DecodeEstimate d = estimate_decode(config, mb, o.plan, cluster.node_of_rank, spec, at,
                                               static_cast<int>(kv_bits));
      text << "  decode at " << at << " tokens of context: " << fixed(d.tokens_per_second(), 2)
           << " tok/s at batch 1 (compute " << fixed(d.compute_seconds * 1e3, 1)
           << " ms + communication " << fixed(d.comm_seconds * 1e3, 2) << " ms per token, "
           << d.messages << " messages)";
      if (o.plan.stages.size() > 1)
        text << "; " << fixed(d.pipelined_tokens_per_second, 2) << " tok/s in all with "
             << o.plan.stages.size() << " sequences in flight";
      text << "\n";
      jo["decode"].push_back({{"ctx", at},
                              {"tokens_per_second", d.tokens_per_second()},
                              {"compute_seconds", d.compute_seconds},
                              {"comm_seconds", d.comm_seconds},
                              {"messages", d.messages},
                              {"comm_bytes", d.comm_bytes},
                              {"pipelined_tokens_per_second", d.pipelined_tokens_per_second}});
    }
    out["plans"].push_back(jo);
  }
  if (json)
    std::cout << out.dump() << std::endl;
  else
    std::cout << text.str() << std::flush;
  return 0;
}

}  // namespace qcoder::cli
