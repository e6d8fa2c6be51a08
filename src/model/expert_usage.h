// How often each routed expert is chosen, per decoder layer: the input of the weight
// residency policy (model/residency.h) and of the expert-use figures in /metrics and bench.
// Counters are relaxed atomics: the forward pass records, any thread may read.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace qcoder {

class ExpertUsage {
 public:
  // layers: decoder layers counted (the model's, or a rank's share); experts per layer.
  ExpertUsage(int64_t layers, int64_t experts);

  int64_t layers() const { return layers_; }
  int64_t experts() const { return experts_; }

  // Adds one use for every id in `ids` (rows * k expert ids of `layer`); ids outside
  // [0, experts) (dense layers record -1) are ignored.
  void record(int64_t layer, std::span<const int32_t> ids);
  uint64_t count(int64_t layer, int64_t expert) const;
  // Every counter, [layer][expert] flattened, read one by one (not an atomic snapshot).
  std::vector<uint64_t> snapshot() const;
  // Total uses recorded in `layer`.
  uint64_t layer_total(int64_t layer) const;
  void reset();

 private:
  int64_t layers_, experts_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
};

// Summary of one layer's counts for reports: distinct experts used, and the share of all uses
// that went to the `top` most used experts.
struct ExpertUseSummary {
  int64_t used = 0;
  uint64_t total = 0;
  double top_share = 0.0;
};
ExpertUseSummary summarize_layer(const ExpertUsage& usage, int64_t layer, int64_t top);

}  // namespace qcoder
