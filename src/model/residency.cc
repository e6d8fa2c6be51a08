#include "model/residency.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <string>

#include "core/error.h"
#include "core/log.h"

namespace qcoder {
namespace {

uintptr_t page_size() {
  static const uintptr_t p = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  return p;
}
uintptr_t page_down(uintptr_t a) { return a & ~(page_size() - 1); }
uintptr_t page_up(uintptr_t a) { return page_down(a + page_size() - 1); }

// The mapped bytes of one matrix view: its packed data, scales and biases.
template <class R>
void add_matrix(const QMatrix& m, std::vector<R>* out) {
  if (m.rows == 0 || m.data == nullptr) return;
  auto add = [&](const uint8_t* p, size_t row_bytes) {
    if (p == nullptr || row_bytes == 0) return;
    const auto b = reinterpret_cast<uintptr_t>(p);
    out->push_back({b, b + static_cast<uintptr_t>(m.rows) * row_bytes});
  };
  add(m.data, m.row_bytes);
  add(m.scales, m.scales_row_bytes);
  add(m.biases, m.biases_row_bytes);
}

template <class R>
uint64_t total(const std::vector<R>& ranges) {
  uint64_t n = 0;
  for (const R& r : ranges) n += r.end - r.begin;
  return n;
}

std::string gb(uint64_t bytes) { return std::to_string(static_cast<double>(bytes) / 1e9) + " GB"; }

}  // namespace

WeightResidency::WeightResidency(const ModelConfig& config, const ModelWeights& weights,
                                 const ExpertUsage& usage, ResidencyOptions options)
    : config_(config), weights_(weights), usage_(usage), options_(options) {
  layers_ = static_cast<int64_t>(weights_.layers.size());
  experts_ = config_.num_experts;
  if (options_.refresh_every < 1) options_.refresh_every = 1;
  expert_bytes_.assign(static_cast<size_t>(layers_ * experts_), 0);
  hot_.assign(expert_bytes_.size(), 0);
  uint64_t largest = 0;
  for (int64_t l = 0; l < layers_; ++l) {
    const LayerWeights& w = weights_.layers[static_cast<size_t>(l)];
    for (const QMatrix* m : {&w.q_proj, &w.k_proj, &w.v_proj, &w.o_proj, &w.mlp_gate, &w.mlp_up, &w.mlp_down})
      add_matrix(*m, &base_ranges_);
    if (!w.sparse) continue;
    add_matrix(w.router, &base_ranges_);
    for (int64_t e = 0; e < experts_; ++e) {
      const uint64_t b = total(expert_ranges(l, e));
      expert_bytes_[static_cast<size_t>(l * experts_ + e)] = b;
      stats_.expert_bytes += b;
      largest = std::max(largest, b);
      stats_.experts += b > 0;
    }
  }
  for (int64_t l = 0; l < layers_; ++l) {
    std::vector<Range> r;
    for (int64_t e = 0; e < experts_; ++e)
      for (const Range& x : expert_ranges(l, e)) r.push_back({page_down(x.begin), page_up(x.end)});
    layer_regions_.push_back(merged(std::move(r)));
  }
  add_matrix(weights_.lm_head, &base_ranges_);
  if (config_.tie_word_embeddings) add_matrix(weights_.embed, &base_ranges_);
  stats_.base_bytes = total(base_ranges_);
  stats_.reserve_bytes = largest * static_cast<uint64_t>(std::max<int64_t>(config_.num_experts_per_tok, 0));
  stats_.budget_bytes = options_.budget_bytes;
  if (options_.budget_bytes > 0 && stats_.base_bytes + stats_.reserve_bytes > options_.budget_bytes)
    throw Error("memory budget of " + gb(options_.budget_bytes) + " is too small: the weights read for every token take " +
                gb(stats_.base_bytes) + " and one decode step maps up to " + gb(stats_.reserve_bytes) +
                " of routed experts; the budget must be at least " + gb(stats_.base_bytes + stats_.reserve_bytes));

  std::vector<Range> to_lock = base_ranges_;
  if (options_.budget_bytes == 0)
    for (int64_t l = 0; l < layers_; ++l)
      for (int64_t e = 0; e < experts_; ++e)
        for (const Range& r : expert_ranges(l, e)) to_lock.push_back(r);
  if (options_.lock) {
    for (const Range& r : to_lock) {
      const uintptr_t b = page_down(r.begin), e = page_up(r.end);
      if (::mlock(reinterpret_cast<void*>(b), e - b) == 0) {
        locked_.push_back({b, e});
        stats_.locked_bytes += e - b;
      } else if (!stats_.lock_failed) {
        stats_.lock_failed = true;
        QCODER_WARN("--mlock: cannot lock weights in memory (" << std::strerror(errno)
                    << "); raise RLIMIT_MEMLOCK (ulimit -l) or run without --mlock; continuing unlocked");
      }
    }
  }
  rebuild_protected();
}

WeightResidency::~WeightResidency() {
  for (const Range& r : locked_) ::munlock(reinterpret_cast<void*>(r.begin), r.end - r.begin);
}

std::vector<WeightResidency::Range> WeightResidency::expert_ranges(int64_t layer, int64_t expert) const {
  std::vector<Range> out;
  const LayerWeights& w = weights_.layers[static_cast<size_t>(layer)];
  if (!w.sparse) return out;
  for (const ExpertStack* s : {&w.gate_proj, &w.up_proj, &w.down_proj})
    if (expert < static_cast<int64_t>(s->experts.size())) add_matrix(s->experts[static_cast<size_t>(expert)], &out);
  return out;
}

// Pages of the base and the hot set, merged: an eviction never unmaps a page one of them uses.
void WeightResidency::rebuild_protected() {
  std::vector<Range> r;
  for (const Range& b : base_ranges_) r.push_back({page_down(b.begin), page_up(b.end)});
  for (int64_t i = 0; i < layers_ * experts_; ++i)
    if (hot_[static_cast<size_t>(i)])
      for (const Range& x : expert_ranges(i / experts_, i % experts_)) r.push_back({page_down(x.begin), page_up(x.end)});
  protected_ = merged(std::move(r));
}

std::vector<WeightResidency::Range> WeightResidency::merged(std::vector<Range> r) {
  std::sort(r.begin(), r.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  std::vector<Range> out;
  for (const Range& x : r) {
    if (!out.empty() && x.begin <= out.back().end)
      out.back().end = std::max(out.back().end, x.end);
    else
      out.push_back(x);
  }
  return out;
}

// Unmaps the pages of `ranges` (rounded outward) except the protected ones.
void WeightResidency::unmap(const std::vector<Range>& ranges) {
  for (const Range& x : ranges) {
    uintptr_t b = page_down(x.begin);
    const uintptr_t end = page_up(x.end);
    auto it = std::upper_bound(protected_.begin(), protected_.end(), b,
                               [](uintptr_t v, const Range& p) { return v < p.end; });
    while (b < end) {
      uintptr_t stop = end;
      if (it != protected_.end() && it->begin < end) stop = std::max(b, it->begin);
      if (stop > b) ::madvise(reinterpret_cast<void*>(b), stop - b, MADV_DONTNEED);
      if (it == protected_.end() || it->begin >= end) break;
      b = it->end;
      ++it;
    }
  }
}

// After a layer ran, every cold page of its experts is unmapped, not only the routed cold
// experts' own: the kernel maps file pages around a fault (fault-around, large page-cache
// folios), so touching any expert, hot or cold, maps parts of its neighbours too.
void WeightResidency::after_layer(int64_t layer, std::span<const int32_t> ids) {
  if (layer < 0 || layer >= layers_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int32_t> cold;
  for (int32_t e : ids) {
    if (e < 0 || e >= experts_) continue;
    const bool hot = hot_[static_cast<size_t>(layer * experts_ + e)] != 0;
    ++(hot ? stats_.hot_uses : stats_.cold_uses);
    if (!hot && std::find(cold.begin(), cold.end(), e) == cold.end()) cold.push_back(e);
  }
  if (options_.budget_bytes == 0) return;
  unmap(layer_regions_[static_cast<size_t>(layer)]);
  stats_.evictions += cold.size();
}

void WeightResidency::after_forward() {
  bool due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    due = ++calls_ % options_.refresh_every == 0;
  }
  if (due) refresh();
}

void WeightResidency::refresh() {
  if (options_.budget_bytes == 0) return;
  const std::vector<uint64_t> counts = usage_.snapshot();
  std::lock_guard<std::mutex> lock(mu_);
  const size_t n = static_cast<size_t>(layers_ * experts_);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  // Most used first; ties keep the lower (layer, expert), so the choice is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const uint64_t ca = a < counts.size() ? counts[a] : 0, cb = b < counts.size() ? counts[b] : 0;
    return ca > cb;
  });
  const uint64_t room = options_.budget_bytes - stats_.base_bytes - stats_.reserve_bytes;
  std::vector<uint8_t> hot(n, 0);
  uint64_t used = 0;
  int64_t count = 0;
  for (size_t i : order) {
    if (i >= counts.size() || counts[i] == 0 || expert_bytes_[i] == 0) break;
    if (used + expert_bytes_[i] > room) continue;  // a smaller expert further down may still fit
    hot[i] = 1;
    used += expert_bytes_[i];
    ++count;
  }
  std::vector<size_t> promoted, demoted;
  for (size_t i = 0; i < n; ++i) {
    if (hot[i] && !hot_[i]) promoted.push_back(i);
    if (!hot[i] && hot_[i]) demoted.push_back(i);
  }
  hot_.swap(hot);
  rebuild_protected();
  for (size_t i : demoted) {
    for (const Range& x : expert_ranges(static_cast<int64_t>(i) / experts_, static_cast<int64_t>(i) % experts_)) {
      if (!options_.lock) break;
      const uintptr_t b = page_up(x.begin), e = page_down(x.end);
      if (e > b) ::munlock(reinterpret_cast<void*>(b), e - b);
    }
    unmap(expert_ranges(static_cast<int64_t>(i) / experts_, static_cast<int64_t>(i) % experts_));
  }
  for (size_t i : promoted)
    for (const Range& x : expert_ranges(static_cast<int64_t>(i) / experts_, static_cast<int64_t>(i) % experts_)) {
      const uintptr_t b = page_down(x.begin), e = page_up(x.end);
      ::madvise(reinterpret_cast<void*>(b), e - b, MADV_WILLNEED);
      if (options_.lock && ::mlock(reinterpret_cast<void*>(b), e - b) == 0) locked_.push_back({b, e});
    }
  stats_.hot_bytes = used;
  stats_.hot_experts = count;
  ++stats_.refreshes;
}

bool WeightResidency::is_hot(int64_t layer, int64_t expert) const {
  if (layer < 0 || layer >= layers_ || expert < 0 || expert >= experts_) return false;
  std::lock_guard<std::mutex> lock(mu_);
  return hot_[static_cast<size_t>(layer * experts_ + expert)] != 0;
}

ResidencyStats WeightResidency::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace qcoder
