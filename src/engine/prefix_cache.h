// A prefix cache over KV blocks: maps chains of full blocks of token ids to the blocks that
// hold their keys and values, so a request whose prompt starts like an earlier sequence (the
// next turn of an agent conversation) reuses that KV instead of recomputing it.
//
// Entries form a tree: an entry is one full block of tokens under its parent entry (the
// blocks before it), found by a hash of (parent, tokens) and confirmed by comparing the
// tokens. The cache holds one reference per entry's block. It is bounded in bytes
// (entries × block bytes): past the bound, least recently used leaves are evicted; and when
// the pool runs out of blocks it evicts the least recently used leaf that no sequence uses.
// Scheduler thread only; the counters may be read from others.
#pragma once

#include <atomic>
#include <cstdint>
#include <set>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/block_pool.h"

namespace qcoder::engine {

class PrefixCache {
 public:
  // max_bytes = 0 disables the cache.
  PrefixCache(KvBlockPool& pool, uint64_t max_bytes);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  struct Match {
    std::vector<int32_t> blocks;  // not retained: attach them before anything else runs
    int64_t tokens = 0;           // positions of tokens they hold, from the start
  };
  // The longest cached prefix of tokens: a chain of whole blocks, then possibly the start of
  // one more block whose first tokens match (its positions past `tokens` hold other data, so
  // the user copies it before writing). Marks the entries used.
  Match lookup(std::span<const int32_t> tokens);
  // Records the full blocks of a sequence: blocks[i] holds tokens [i*B, (i+1)*B). Blocks
  // already cached under the same tokens are kept (and marked used) instead.
  void insert(std::span<const int32_t> tokens, std::span<const int32_t> blocks);
  // Evicts the least recently used leaf whose block nobody else holds; false if none.
  bool reclaim_one();
  void clear();

  int64_t entries() const { return static_cast<int64_t>(live_.load(std::memory_order_relaxed)); }
  uint64_t bytes() const { return static_cast<uint64_t>(entries()) * pool_.block_bytes(); }
  uint64_t max_bytes() const { return max_bytes_; }

 private:
  struct Entry {
    int32_t parent = -1;   // entry index, -1 at the root
    int32_t block = -1;    // -1: slot free
    int32_t children = 0;  // entries whose parent this is
    std::vector<int32_t> kids;
    uint64_t hash = 0;
    uint64_t last_used = 0;
    std::vector<int32_t> tokens;
  };
  uint64_t chain_hash(uint64_t parent_hash, std::span<const int32_t> tokens) const;
  int32_t find(int32_t parent, uint64_t hash, std::span<const int32_t> tokens) const;
  void touch(int32_t e);
  void evict(int32_t e);  // e must be a leaf
  void enforce_bound();

  KvBlockPool& pool_;
  uint64_t max_bytes_;
  int64_t block_tokens_;
  uint64_t tick_ = 0;
  std::vector<Entry> entries_;
  std::vector<int32_t> roots_;  // entries without a parent
  std::vector<int32_t> free_slots_;
  std::unordered_multimap<uint64_t, int32_t> by_hash_;
  std::set<std::pair<uint64_t, int32_t>> leaves_;  // (last_used, entry) of entries with no children
  std::atomic<int64_t> live_{0};
};

}  // namespace qcoder::engine
