#include "engine/prefix_cache.h"

#include <algorithm>

namespace qcoder::engine {

PrefixCache::PrefixCache(KvBlockPool& pool, uint64_t max_bytes)
    : pool_(pool), max_bytes_(max_bytes), block_tokens_(pool.block_tokens()) {}

PrefixCache::~PrefixCache() { clear(); }

uint64_t PrefixCache::chain_hash(uint64_t parent_hash, std::span<const int32_t> tokens) const {
  // FNV-1a over the parent's hash and the token ids; collisions are caught by comparing tokens.
  uint64_t h = 1469598103934665603ull ^ parent_hash;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(parent_hash);
  for (int32_t t : tokens) mix(static_cast<uint32_t>(t));
  return h;
}

int32_t PrefixCache::find(int32_t parent, uint64_t hash, std::span<const int32_t> tokens) const {
  auto [lo, hi] = by_hash_.equal_range(hash);
  for (auto it = lo; it != hi; ++it) {
    const Entry& e = entries_[static_cast<size_t>(it->second)];
    if (e.parent == parent &&
        std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin(), tokens.end()))
      return it->second;
  }
  return -1;
}

void PrefixCache::touch(int32_t idx) {
  Entry& e = entries_[static_cast<size_t>(idx)];
  if (e.children == 0) leaves_.erase({e.last_used, idx});
  e.last_used = ++tick_;
  if (e.children == 0) leaves_.insert({e.last_used, idx});
}

PrefixCache::Match PrefixCache::lookup(std::span<const int32_t> tokens) {
  Match m;
  if (max_bytes_ == 0) return m;
  int32_t parent = -1;
  uint64_t hash = 0;
  size_t off = 0;
  for (; off + static_cast<size_t>(block_tokens_) <= tokens.size();
       off += static_cast<size_t>(block_tokens_)) {
    const auto chunk = tokens.subspan(off, static_cast<size_t>(block_tokens_));
    const uint64_t h = chain_hash(hash, chunk);
    const int32_t idx = find(parent, h, chunk);
    if (idx < 0) break;
    touch(idx);
    m.blocks.push_back(entries_[static_cast<size_t>(idx)].block);
    parent = idx;
    hash = h;
  }
  m.tokens = static_cast<int64_t>(off);
  // A partial match in the next block: the child sharing the longest run of first tokens.
  const auto rest =
      tokens.subspan(off, std::min(tokens.size() - off, static_cast<size_t>(block_tokens_)));
  const std::vector<int32_t>& kids =
      parent >= 0 ? entries_[static_cast<size_t>(parent)].kids : roots_;
  int32_t best = -1;
  size_t best_len = 0;
  for (int32_t k : kids) {
    const auto& kt = entries_[static_cast<size_t>(k)].tokens;
    const size_t len = static_cast<size_t>(
        std::mismatch(rest.begin(), rest.end(), kt.begin()).first - rest.begin());
    if (len > best_len) {
      best = k;
      best_len = len;
    }
  }
  if (best >= 0) {
    touch(best);
    m.blocks.push_back(entries_[static_cast<size_t>(best)].block);
    m.tokens += static_cast<int64_t>(best_len);
  }
  return m;
}

void PrefixCache::insert(std::span<const int32_t> tokens, std::span<const int32_t> blocks) {
  if (max_bytes_ == 0) return;
  int32_t parent = -1;
  uint64_t hash = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const size_t off = i * static_cast<size_t>(block_tokens_);
    if (off + static_cast<size_t>(block_tokens_) > tokens.size()) break;
    const auto chunk = tokens.subspan(off, static_cast<size_t>(block_tokens_));
    const uint64_t h = chain_hash(hash, chunk);
    int32_t idx = find(parent, h, chunk);
    if (idx < 0) {
      if (!free_slots_.empty()) {
        idx = free_slots_.back();
        free_slots_.pop_back();
      } else {
        idx = static_cast<int32_t>(entries_.size());
        entries_.emplace_back();
      }
      Entry& e = entries_[static_cast<size_t>(idx)];
      e.parent = parent;
      e.block = blocks[i];
      e.children = 0;
      e.hash = h;
      e.tokens.assign(chunk.begin(), chunk.end());
      e.last_used = ++tick_;
      pool_.retain(blocks[i]);
      by_hash_.insert({h, idx});
      leaves_.insert({e.last_used, idx});
      live_.fetch_add(1, std::memory_order_relaxed);
      if (parent >= 0) {
        Entry& p = entries_[static_cast<size_t>(parent)];
        if (p.children++ == 0) leaves_.erase({p.last_used, parent});
        p.kids.push_back(idx);
      } else {
        roots_.push_back(idx);
      }
    } else {
      touch(idx);
    }
    parent = idx;
    hash = h;
  }
  enforce_bound();
}

void PrefixCache::evict(int32_t idx) {
  Entry& e = entries_[static_cast<size_t>(idx)];
  leaves_.erase({e.last_used, idx});
  auto [lo, hi] = by_hash_.equal_range(e.hash);
  for (auto it = lo; it != hi; ++it)
    if (it->second == idx) {
      by_hash_.erase(it);
      break;
    }
  pool_.release(e.block);
  if (e.parent >= 0) {
    Entry& p = entries_[static_cast<size_t>(e.parent)];
    if (--p.children == 0) leaves_.insert({p.last_used, e.parent});
    std::erase(p.kids, idx);
  } else {
    std::erase(roots_, idx);
  }
  e = Entry{};
  free_slots_.push_back(idx);
  live_.fetch_sub(1, std::memory_order_relaxed);
}

void PrefixCache::enforce_bound() {
  while (bytes() > max_bytes_ && !leaves_.empty()) evict(leaves_.begin()->second);
}

bool PrefixCache::reclaim_one() {
  for (const auto& [tick, idx] : leaves_) {
    if (pool_.ref_count(entries_[static_cast<size_t>(idx)].block) == 1) {
      evict(idx);
      return true;
    }
  }
  return false;
}

void PrefixCache::clear() {
  while (!leaves_.empty()) evict(leaves_.begin()->second);
}

}  // namespace qcoder::engine
