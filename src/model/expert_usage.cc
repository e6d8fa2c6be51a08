#include "model/expert_usage.h"

#include <algorithm>
#include <functional>

namespace qcoder {

ExpertUsage::ExpertUsage(int64_t layers, int64_t experts)
    : layers_(std::max<int64_t>(layers, 0)),
      experts_(std::max<int64_t>(experts, 0)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(static_cast<size_t>(layers_ * experts_))) {
  reset();
}

void ExpertUsage::record(int64_t layer, std::span<const int32_t> ids) {
  if (layer < 0 || layer >= layers_) return;
  std::atomic<uint64_t>* row = &counts_[static_cast<size_t>(layer * experts_)];
  for (int32_t e : ids)
    if (e >= 0 && e < experts_) row[e].fetch_add(1, std::memory_order_relaxed);
}

uint64_t ExpertUsage::count(int64_t layer, int64_t expert) const {
  if (layer < 0 || layer >= layers_ || expert < 0 || expert >= experts_) return 0;
  return counts_[static_cast<size_t>(layer * experts_ + expert)].load(std::memory_order_relaxed);
}

std::vector<uint64_t> ExpertUsage::snapshot() const {
  std::vector<uint64_t> out(static_cast<size_t>(layers_ * experts_));
  for (size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

uint64_t ExpertUsage::layer_total(int64_t layer) const {
  uint64_t sum = 0;
  for (int64_t e = 0; e < experts_; ++e) sum += count(layer, e);
  return sum;
}

void ExpertUsage::reset() {
  for (int64_t i = 0; i < layers_ * experts_; ++i) counts_[i].store(0, std::memory_order_relaxed);
}

ExpertUseSummary summarize_layer(const ExpertUsage& usage, int64_t layer, int64_t top) {
  ExpertUseSummary s;
  std::vector<uint64_t> c;
  for (int64_t e = 0; e < usage.experts(); ++e) {
    const uint64_t n = usage.count(layer, e);
    c.push_back(n);
    s.total += n;
    s.used += n > 0;
  }
  std::sort(c.begin(), c.end(), std::greater<>());
  uint64_t head = 0;
  for (int64_t i = 0; i < std::min<int64_t>(top, static_cast<int64_t>(c.size())); ++i) head += c[i];
  s.top_share = s.total ? static_cast<double>(head) / static_cast<double>(s.total) : 0.0;
  return s;
}

}  // namespace qcoder
