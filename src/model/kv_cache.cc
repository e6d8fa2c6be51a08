#include "model/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace qcoder {

KvCache::KvCache(const ModelConfig& config, int64_t max_tokens)
    : row_floats_(config.num_key_value_heads * config.head_dim),
      max_tokens_(max_tokens),
      k_(static_cast<size_t>(config.num_hidden_layers)),
      v_(static_cast<size_t>(config.num_hidden_layers)) {}

void KvCache::reserve_more(int64_t n) {
  const int64_t need = length_ + n;
  if (need > max_tokens_)
    throw Error("sequence of " + std::to_string(need) + " tokens exceeds the context limit of " +
                std::to_string(max_tokens_));
  const size_t floats = static_cast<size_t>(need * row_floats_);
  for (size_t l = 0; l < k_.size(); ++l) {
    if (k_[l].size() >= floats) continue;
    // Grow geometrically (in 256-token steps at least) so appends stay amortized O(1).
    const size_t grown = std::max(floats, std::min<size_t>(k_[l].size() * 2,
                                                            static_cast<size_t>(max_tokens_ * row_floats_)));
    const size_t target = std::max(grown, static_cast<size_t>(std::min<int64_t>(max_tokens_, 256) * row_floats_));
    k_[l].resize(target);
    v_[l].resize(target);
  }
}

void KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) throw Error("KvCache::truncate: bad length " + std::to_string(n));
  length_ = n;
}

uint64_t KvCache::bytes() const {
  uint64_t b = 0;
  for (size_t l = 0; l < k_.size(); ++l) b += (k_[l].capacity() + v_[l].capacity()) * sizeof(float);
  return b;
}

}  // namespace qcoder
