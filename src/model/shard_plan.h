// How a model is spread over the ranks of a job (docs/DISTRIBUTED.md).
//
// A plan is a list of pipeline stages, each a contiguous run of decoder layers held by a
// contiguous run of ranks. The first stage also holds the embedding, the last the final norm
// and the output head (computed by its first rank). Inside a stage of several ranks the
// experts of every layer are partitioned (contiguous ranges, rotated by layer so the extra
// experts of a non-divisible count move around), the router is replicated so every rank routes
// identically, and the attention heads are split by whole GQA groups; each rank's partial
// attention and MoE outputs are summed with one all-reduce each per layer. Dense layers are
// replicated.
//
//   pipeline: one rank per stage, layers balanced by bytes (or given explicitly)
//   expert:   one stage holding every rank
//   combined: several stages of several ranks (pipeline across nodes, expert within a node)
//
// Plans are pure functions of their inputs, so every rank computes the same plan.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/footprint.h"
#include "model/weights.h"

namespace qcoder {

enum class ParallelMode { kSingle, kPipeline, kExpert, kCombined, kAuto };

// "pipeline", "expert", "combined", "auto" (and "single"); throws qcoder::Error otherwise.
ParallelMode parse_parallel_mode(const std::string& text);
const char* parallel_mode_name(ParallelMode mode);

struct PipelineStage {
  int64_t layer_begin = 0, layer_end = 0;  // decoder layers [begin, end)
  int first_rank = 0, ranks = 1;           // world ranks [first_rank, first_rank + ranks)
};

struct ShardPlan {
  ParallelMode mode = ParallelMode::kSingle;  // never kAuto
  std::vector<PipelineStage> stages;
  // Inside stages of several ranks: attention heads split (true) or computed by every rank
  // (false: the head boundaries do not fall on o_proj's quantization groups).
  bool split_attention = true;
  std::string reason;  // why this plan (auto), for the log

  int world_size() const;
  int stage_of_rank(int rank) const;
  int logits_rank() const { return stages.back().first_rank; }
};

// Where the ranks run and how much memory each may use.
struct Cluster {
  std::vector<int> node_of_rank;       // host index of each rank
  std::vector<uint64_t> mem_per_rank;  // bytes each rank may use (0 = unknown)
  int ranks() const { return static_cast<int>(node_of_rank.size()); }
  int nodes() const;
};

struct PlanRequest {
  ParallelMode mode = ParallelMode::kAuto;
  int stages = 0;                         // combined: stages (0 = one per node, else 2)
  std::vector<int64_t> layers_per_stage;  // explicit layer counts; empty = balanced by bytes
  int64_t ctx = 0;                        // context the KV cache must hold (auto's memory check)
  int kv_bits = 16;
};

// Throws qcoder::Error when the request cannot be met (more stages than layers, counts that do
// not add up, ...).
ShardPlan make_shard_plan(const ModelConfig& config, const ModelBytes& bytes,
                          const Cluster& cluster, const PlanRequest& request);

// Splits the layers into stages.size() contiguous non-empty runs minimising the largest
// per-rank bytes (stage bytes / ranks; the first stage carries the embedding, the last the
// head). Returns the layer count of each stage.
std::vector<int64_t> balance_layers(const ModelBytes& bytes,
                                    const std::vector<int>& ranks_per_stage);

// What one rank holds.
struct RankShard {
  int rank = 0, stage = 0, member = 0, stage_size = 1, stages = 1;
  int64_t layer_begin = 0, layer_end = 0;
  bool embed = false, head = false;  // head: this rank computes the logits
  int64_t kv_head_begin = 0, kv_head_end = 0;
  int64_t num_experts = 0;
  int64_t num_kv_heads = 0;  // the model's

  bool splits_experts() const { return stage_size > 1; }
  // Experts of `layer` this rank owns: [first, second).
  std::pair<int64_t, int64_t> expert_range(int64_t layer) const;
  WeightSelection selection() const;
  // The config this rank's attention and KV cache see: its layers and its heads.
  ModelConfig rank_config(const ModelConfig& config) const;
};
RankShard rank_shard(const ShardPlan& plan, const ModelConfig& config, int rank);

// Memory one rank needs: its weights, its KV cache at ctx, working buffers.
struct RankFootprint {
  uint64_t weights = 0, kv = 0, activations = 0;
  uint64_t total() const { return weights + kv + activations; }
};
RankFootprint rank_footprint(const ModelConfig& config, const ModelBytes& bytes,
                             const RankShard& shard, int64_t ctx, int kv_bits);

// Several lines, one per stage: ranks, layers, what each rank holds.
std::string describe_plan(const ShardPlan& plan, const ModelConfig& config);

// [begin, end) of part `index` when n items are split into `parts` as evenly as possible.
std::pair<int64_t, int64_t> even_range(int64_t n, int64_t parts, int64_t index);

}  // namespace qcoder
