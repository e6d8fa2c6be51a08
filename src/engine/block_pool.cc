#include "engine/block_pool.h"

#include <string>

#include "core/error.h"

namespace qcoder::engine {

KvBlockPool::KvBlockPool(int64_t block_tokens, int64_t block_bytes, int64_t capacity_blocks)
    : block_tokens_(block_tokens), block_bytes_(block_bytes), capacity_(capacity_blocks) {
  if (capacity_blocks < 1 || capacity_blocks > INT32_MAX)
    throw Error("KV pool: bad block count " + std::to_string(capacity_blocks));
  data_.resize(static_cast<size_t>(capacity_blocks));
  refs_.assign(static_cast<size_t>(capacity_blocks), 0);
}

int32_t KvBlockPool::allocate() {
  for (;;) {
    int32_t id = -1;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else if (next_fresh_ < capacity_) {
      id = next_fresh_++;
      data_[static_cast<size_t>(id)] =
          std::make_unique<uint8_t[]>(static_cast<size_t>(block_bytes_));
    }
    if (id >= 0) {
      refs_[static_cast<size_t>(id)] = 1;
      in_use_.fetch_add(1, std::memory_order_relaxed);
      return id;
    }
    if (!reclaim_ || !reclaim_()) return -1;
  }
}

void KvBlockPool::copy_block(int32_t dst, int32_t src) {
  KvBlockAllocator::copy_block(dst, src);
  if (copy_observer_) copy_observer_(dst, src);
}

void KvBlockPool::retain(int32_t block) { ++refs_[static_cast<size_t>(block)]; }

void KvBlockPool::release(int32_t block) {
  if (--refs_[static_cast<size_t>(block)] == 0) {
    free_.push_back(block);
    in_use_.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace qcoder::engine
