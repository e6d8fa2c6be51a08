// The server's paged KV memory: a bounded pool of fixed-size, reference-counted blocks that
// every sequence's KvCache draws from (model/kv_cache.h has the block layout). Block memory is
// allocated on first use and then kept for reuse, so the process never holds more than the
// budget and its size settles once the pool has been full once.
//
// Used by the scheduler thread only; the counters are atomics so that /metrics may read them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/kv_cache.h"

namespace qcoder::engine {

class KvBlockPool final : public KvBlockAllocator {
 public:
  // capacity_blocks >= 1 blocks of block_bytes bytes (model/kv_cache.h: kv_block_bytes, which
  // depends on the KV format), each covering block_tokens positions.
  KvBlockPool(int64_t block_tokens, int64_t block_bytes, int64_t capacity_blocks);

  int64_t block_tokens() const override { return block_tokens_; }
  int32_t allocate() override;
  void retain(int32_t block) override;
  void release(int32_t block) override;
  int32_t ref_count(int32_t block) const override { return refs_[static_cast<size_t>(block)]; }
  int64_t block_bytes() const override { return block_bytes_; }
  uint8_t* block_data(int32_t block) override { return data_[static_cast<size_t>(block)].get(); }
  void copy_block(int32_t dst, int32_t src) override;

  // Called by allocate() when every block is taken: it should drop references (the prefix
  // cache evicting an entry) and return true if it released something, false if it cannot.
  void set_reclaim(std::function<bool()> reclaim) { reclaim_ = std::move(reclaim); }
  // Called after every copy_block (the MPI leader mirrors the copy on the other ranks).
  void set_copy_observer(std::function<void(int32_t dst, int32_t src)> observer) {
    copy_observer_ = std::move(observer);
  }

  int64_t capacity() const { return capacity_; }
  int64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  int64_t free_blocks() const { return capacity_ - in_use(); }

 private:
  int64_t block_tokens_, block_bytes_, capacity_;
  std::vector<std::unique_ptr<uint8_t[]>> data_;  // null until first used
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;  // ids with data and no reference
  int32_t next_fresh_ = 0;     // ids >= this have never been allocated
  std::atomic<int64_t> in_use_{0};
  std::function<bool()> reclaim_;
  std::function<void(int32_t, int32_t)> copy_observer_;
};

}  // namespace qcoder::engine
