// One rank's part of a model sharded over the ranks of a job by a ShardPlan
// (model/shard_plan.h, docs/DISTRIBUTED.md).
//
// Each rank binds only what its shard holds (its layers; the embedding on the first stage;
// the head on the logits rank; its experts and attention heads inside a stage of several
// ranks), so the pages of everything else are never touched. forward() is collective: every
// rank calls it with the same batch (the same tokens and logits modes; each rank passes its
// own KV caches, made by new_cache()). The computation is Model::forward itself, run on a
// Model holding this rank's part (Model::load_part) through ForwardHooks: its attention sees
// a config with only its heads, its KV cache only its layers and heads, and the experts it
// does not own are empty views that moe_block skips. Partial attention and MoE outputs are
// summed over the stage with Communicator::all_reduce_sum (rank-order float32 sums: the same
// bits on every rank, so routing is identical everywhere). Activations pass from stage to
// stage; the logits end up on rank 0.
//
// With one rank this is Model::forward, bit for bit. Sharded, the summation order of o_proj's
// and the MoE's partial sums changes, so logits agree to float32 rounding (docs/DISTRIBUTED.md).
#pragma once

#include <memory>
#include <span>
#include <string>

#include "core/thread_pool.h"
#include "dist/communicator.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/shard_plan.h"
#include "model/weights.h"

namespace qcoder {

class ParallelModel {
 public:
  // Collective over `world` (every rank, the same plan). `world` must outlive the model.
  // rope: as Model::load.
  static std::unique_ptr<ParallelModel> load(const std::string& dir, const ShardPlan& plan,
                                             dist::Communicator& world, const RopeOptions& rope = {});
  ~ParallelModel();

  const ModelConfig& config() const { return config_; }  // the whole model's
  const ShardPlan& plan() const { return plan_; }
  const RankShard& shard() const { return shard_; }
  const ModelWeights& weights() const { return part_->weights(); }
  dist::Communicator& world() const { return world_; }

  // A cache for one sequence holding this rank's layers and heads in `format`; max_tokens <= 0
  // means the model's usable context (model/rope_scaling.h).
  KvCache new_cache(int64_t max_tokens = 0, const KvFormat& format = {}) const;
  // The config this rank's KV caches hold (its layers, its KV heads), for caches that draw on
  // a block pool (the server's paged KV).
  const ModelConfig& kv_config() const { return part_->config(); }
  // Bytes of one KV block (block_tokens positions in format f) on the rank holding the most.
  int64_t max_kv_block_bytes(int64_t block_tokens, const KvFormat& f) const;
  // This rank's share as a Model (its expert-use counters; a weight residency policy for its
  // own weights, Model::set_residency, between forward calls).
  const Model& part() const { return *part_; }
  Model& part() { return *part_; }

  // What forward() checks before it changes anything; throws qcoder::Error. Every rank
  // reaches the same verdict on the same batch.
  void validate(std::span<const SequenceInput> batch) const;

  // Collective. On rank 0, out[i] is what Model::forward gives (to float32 rounding); on other
  // ranks out[i].rows == 0. With several pipeline stages and several sequences, the batch
  // runs as micro-batches (one per stage) so that the stages work at the same time. trace
  // (optional) receives the routes of this rank's layers.
  void forward(std::span<const SequenceInput> batch, std::span<SequenceOutput> out,
               ThreadPool& pool, ForwardTrace* trace = nullptr);

  // Time spent in forward() computing and inside communication (transfers and waiting).
  struct Timing {
    int64_t forwards = 0;
    double total_seconds = 0, comm_seconds = 0;
    // CPU time of the process during forward() (all threads), and of the calling thread
    // while it waited on other ranks: compute CPU = cpu_seconds - comm_cpu_seconds.
    double cpu_seconds = 0, comm_cpu_seconds = 0;
    uint64_t comm_bytes = 0;
    int64_t comm_operations = 0;
  };
  Timing timing() const;

 private:
  ParallelModel(dist::Communicator& world) : world_(world) {}
  void run_micro_batch(std::span<const SequenceInput> batch, std::span<SequenceOutput> out,
                       ThreadPool& pool, ForwardTrace* trace,
                       std::vector<std::unique_ptr<dist::PendingSend>>& sends,
                       std::vector<std::vector<float>>& send_buffers);

  dist::Communicator& world_;
  std::unique_ptr<dist::Communicator> stage_comm_;
  ShardPlan plan_;
  RankShard shard_;
  ModelConfig config_;           // the whole model
  std::unique_ptr<Model> part_;  // this rank's layers and heads (Model::load_part)
  int64_t forwards_ = 0;
  double total_seconds_ = 0, cpu_seconds_ = 0;
};

}  // namespace qcoder
