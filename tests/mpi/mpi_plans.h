// A plan of the given mode over this job's ranks, all on one machine with no memory limit (the
// MPI tests' common setup).
#pragma once

#include "model/footprint.h"
#include "model/shard_plan.h"
#include "mpi/mpi_world.h"

namespace qcoder::testing {

inline ShardPlan plan_for(const ModelConfig& c, ParallelMode mode) {
  Cluster cluster;
  cluster.node_of_rank.assign(static_cast<size_t>(world().size()), 0);
  cluster.mem_per_rank.assign(static_cast<size_t>(world().size()), 0);
  PlanRequest req;
  req.mode = mode;
  return make_shard_plan(c, model_bytes_from_config(c), cluster, req);
}

}  // namespace qcoder::testing
