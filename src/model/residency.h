// Which weights stay in memory when they do not all fit (issue 8: models larger than RAM).
//
// Weights are mapped read-only from the checkpoint files and paged in by the kernel on first
// touch. Under a budget (--mem-budget) this policy bounds the weight pages mapped in this
// process: the weights read for every token (attention, router, output head, dense MLPs: the
// "base") stay mapped; of the routed experts, the most used ones (counted by ExpertUsage) form
// a hot set that is prefetched (MADV_WILLNEED) and kept, and every other expert is unmapped
// (MADV_DONTNEED) right after the layer that used it (with every other cold page of that layer's
// experts the kernel mapped around it), so its pages can be reclaimed and are
// read again (from the page cache or the disk) the next time it is routed to. With --mlock
// the base and the hot set are locked (everything bound, without a budget).
//
// Budget accounting: base + hot set + a reserve of k experts (the largest a layer may route a
// decode token to) <= budget. During one layer of a long prefill chunk more cold experts may be
// mapped at once; they are unmapped when that layer ends.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "model/config.h"
#include "model/expert_usage.h"
#include "model/weights.h"

namespace qcoder {

struct ResidencyOptions {
  uint64_t budget_bytes = 0;   // 0 = no budget: touched weights stay mapped
  bool lock = false;           // mlock the base and the hot set (all weights without a budget)
  int64_t refresh_every = 16;  // forward calls between updates of the hot set
};

struct ResidencyStats {
  uint64_t budget_bytes = 0;
  uint64_t base_bytes = 0;          // weights read for every token
  uint64_t expert_bytes = 0;        // all routed experts bound
  uint64_t reserve_bytes = 0;       // k experts mapped transiently by a decode step
  uint64_t hot_bytes = 0;           // the hot set
  int64_t hot_experts = 0, experts = 0;
  uint64_t hot_uses = 0, cold_uses = 0;  // routed uses that found their expert hot / cold
  uint64_t evictions = 0;           // cold experts unmapped after their layer
  uint64_t refreshes = 0;
  uint64_t locked_bytes = 0;
  bool lock_failed = false;
};

class WeightResidency {
 public:
  // Throws qcoder::Error when the budget cannot hold the base plus the reserve.
  WeightResidency(const ModelConfig& config, const ModelWeights& weights, const ExpertUsage& usage,
                  ResidencyOptions options);
  ~WeightResidency();
  WeightResidency(const WeightResidency&) = delete;
  WeightResidency& operator=(const WeightResidency&) = delete;

  // After MoE layer `layer` (index into weights.layers) ran with these routed ids.
  void after_layer(int64_t layer, std::span<const int32_t> ids);
  // After each forward call; recomputes the hot set every refresh_every calls.
  void after_forward();
  // Recomputes the hot set from the usage counts now: newly hot experts are prefetched (and
  // locked), demoted ones unlocked and unmapped.
  void refresh();

  bool is_hot(int64_t layer, int64_t expert) const;
  ResidencyStats stats() const;

 private:
  struct Range {
    uintptr_t begin, end;  // bytes [begin, end) of the mapping
  };
  std::vector<Range> expert_ranges(int64_t layer, int64_t expert) const;
  static std::vector<Range> merged(std::vector<Range> ranges);  // sorted, overlaps joined
  void rebuild_protected();
  void unmap(const std::vector<Range>& ranges);

  const ModelConfig& config_;
  const ModelWeights& weights_;
  const ExpertUsage& usage_;
  ResidencyOptions options_;
  int64_t layers_ = 0, experts_ = 0;
  std::vector<uint64_t> expert_bytes_;  // [layer * experts + e]
  std::vector<Range> base_ranges_;
  std::vector<std::vector<Range>> layer_regions_;  // per layer: all its experts' pages, merged
  std::vector<Range> protected_;        // sorted, page-aligned: base + hot, never unmapped
  std::vector<uint8_t> hot_;            // [layer * experts + e]
  std::vector<Range> locked_;
  int64_t calls_ = 0;
  mutable std::mutex mu_;
  ResidencyStats stats_;
};

}  // namespace qcoder
