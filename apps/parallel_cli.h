// `--parallel` for the commands that run over MPI (`generate`; `serve` uses the same session:
// rank 0 serves, the other ranks call follow()). See docs/DISTRIBUTED.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dist/communicator.h"
#include "flags.h"
#include "residency_flags.h"
#include "model/parallel_model.h"
#include "model/parallel_runner.h"

namespace qcoder::cli {

struct ParallelFlags {
  std::string mode = "auto";
  int64_t stages = 0;
  std::string pipeline_layers;
  double mem_per_rank_gb = 0;
  double comm_timeout_s = 600;

  void add_to(FlagSet& flags);
};

class ParallelSession {
 public:
  // Null when this process runs alone (not started by an MPI launcher, or a job of one rank).
  // Otherwise collective: every rank makes the same plan (rank 0 logs it), loads its shard and
  // gets threads per rank (-t; 0 = the node's cores divided among its ranks). ctx: the tokens
  // a sequence will hold; kv: the KV cache's format and, for a server, its per-rank budget
  // (auto's memory check counts the larger of the two). A failure on any rank ends the job.
  static std::unique_ptr<ParallelSession> start(const ParallelFlags& flags, const FlagSet& parsed,
                                                const std::string& model_dir, int64_t ctx,
                                                int64_t threads, const RopeOptions& rope = {},
                                                const KvFormat& kv = {}, uint64_t kv_budget_bytes = 0);
  ~ParallelSession();  // rank 0 releases the followers; timing is logged (QCODER_LOG=debug)

  bool leader() const { return world_->rank() == 0; }
  const ModelConfig& config() const { return model_->config(); }
  ParallelRunner& runner() { return *runner_; }
  ParallelModel& model() { return *model_; }
  dist::Communicator& world() { return *world_; }
  // Ranks of this job on this rank's machine (they share its memory).
  int ranks_on_this_node() const { return ranks_here_; }

  // Ranks other than 0: carry out rank 0's steps until it stops; returns the exit code.
  int follow();

 private:
  ParallelSession() = default;
  void report_timing();

  std::unique_ptr<dist::Communicator> world_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ParallelModel> model_;
  std::unique_ptr<ParallelRunner> runner_;
  int ranks_here_ = 1;
};

// --mem-budget / --mlock on this rank's share of the weights (apps/residency_flags.h); an
// error (a budget too small for this rank's share) ends the whole job with this rank's message.
void apply_residency_flags_on_rank(ParallelSession& session, const ResidencyFlags& flags);

}  // namespace qcoder::cli
