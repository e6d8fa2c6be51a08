// Decode speed of a shard plan on paper, from the rooflines (docs/DISTRIBUTED.md): decode at
// batch 1 reads every active weight byte and the KV cache once per token, so a rank's compute
// time is the bytes it reads over its node's memory bandwidth; communication is a latency per
// message plus bytes over the link bandwidth. Used by `qcoder plan`.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/footprint.h"
#include "model/shard_plan.h"

namespace qcoder {

struct ClusterSpec {
  double mem_bandwidth = 100e9;    // bytes/s of one node's memory
  double link_latency = 50e-6;     // seconds per message between nodes
  double link_bandwidth = 1.25e9;  // bytes/s between nodes (10 Gb/s)
  // Between ranks of one node (shared memory).
  double local_latency = 2e-6;
  double local_bandwidth = 10e9;
};

struct DecodeEstimate {
  double compute_seconds = 0;  // per token, along the critical path
  double comm_seconds = 0;     // per token: all-reduces, stage hand-offs, logits, the step command
  uint64_t bytes_read = 0;     // weights + KV read per token, summed over ranks
  uint64_t comm_bytes = 0;     // bytes sent per token, summed over ranks
  int64_t messages = 0;        // messages on the critical path per token
  // With as many sequences in flight as there are stages (pipeline): tokens/s of all of them.
  double pipelined_tokens_per_second = 0;

  double seconds_per_token() const { return compute_seconds + comm_seconds; }
  double tokens_per_second() const {
    return seconds_per_token() > 0 ? 1.0 / seconds_per_token() : 0;
  }
};

// node_of_rank: the node of each rank (ranks on one node share its memory bandwidth and talk
// over shared memory). ctx: tokens already in the KV cache.
DecodeEstimate estimate_decode(const ModelConfig& config, const ModelBytes& bytes,
                               const ShardPlan& plan, const std::vector<int>& node_of_rank,
                               const ClusterSpec& spec, int64_t ctx, int kv_bits);

// Expected largest number of a token's k experts that land on one rank when E experts are
// split as even_range(E, ranks, .) and the k are drawn uniformly without replacement.
double expected_max_expert_load(int64_t num_experts, int64_t k, int ranks);

}  // namespace qcoder
