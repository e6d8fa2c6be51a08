// Per-sequence key/value cache: post-RoPE keys and values, one row of [kv_head][dim] per
// (layer, position), stored in a KvFormat (kernels/kv_format.h): bf16 by default, float32, or
// 8-/4-bit affine quantized along head_dim as mlx-lm's QuantizedKVCache (docs/KV_CACHE.md).
//
// Contract for every user (attention kernels included): rows are reached only through
// key_row/value_row, one position at a time, as raw bytes of row_bytes() in format(); rows of
// different positions are NOT assumed to be contiguous. Rows are written with store() (which
// encodes) and read back as floats with load_key/load_value or by the attention kernel, which
// decodes them on the fly. Storage is paged: fixed-size blocks of block_tokens positions, each
// block holding every layer's keys and values for its positions, laid out
// [layer][k|v][token][row_bytes].
// Blocks come from a KvBlockAllocator and are reference-counted, so sequences can share the
// blocks of a common prefix; a shared block is copied before it is written (copy on write).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/error.h"
#include "kernels/kv_format.h"
#include "model/config.h"

namespace qcoder {

// Thrown when the allocator has no free block left (the server's KV budget is spent).
class KvOutOfMemory : public Error {
 public:
  using Error::Error;
};

// Where KV blocks come from. Not thread-safe: one owner (a scheduler, or one cache) uses it.
class KvBlockAllocator {
 public:
  virtual ~KvBlockAllocator() = default;
  virtual int64_t block_tokens() const = 0;  // positions per block, a power of two
  // A fresh block holding one reference, or -1 when none can be had.
  virtual int32_t allocate() = 0;
  virtual void retain(int32_t block) = 0;
  virtual void release(int32_t block) = 0;  // frees the block when the last reference goes
  virtual int32_t ref_count(int32_t block) const = 0;
  virtual int64_t block_bytes() const = 0;
  virtual uint8_t* block_data(int32_t block) = 0;  // block_bytes() bytes
  // Copies block src's bytes into block dst (copy on write). An allocator may observe it: the
  // MPI server's leader replays its copies on the other ranks (model/parallel_runner.h).
  virtual void copy_block(int32_t dst, int32_t src);
};

// Bytes of one stored row (one position, one layer, keys or values) in format f.
int64_t kv_row_bytes(const ModelConfig& config, const KvFormat& f);
// Bytes in one block: layers * 2 (k, v) * block_tokens * kv_row_bytes.
int64_t kv_block_bytes(const ModelConfig& config, int64_t block_tokens, const KvFormat& f);
// Bytes per cached token in format f (all layers, keys and values).
inline int64_t kv_bytes_per_token(const ModelConfig& config, const KvFormat& f) {
  return kv_block_bytes(config, 1, f);
}

class KvCache {
 public:
  // A cache with its own private block allocator (blocks of 64 positions on the heap).
  // max_tokens bounds the sequence length (at most the model's context). Throws
  // qcoder::Error for a format the model's head_dim cannot hold.
  KvCache(const ModelConfig& config, int64_t max_tokens, KvFormat format = {});
  // A cache drawing blocks from a shared allocator (the server's paged pool), whose blocks
  // must be kv_block_bytes(config, its block_tokens, format) bytes.
  KvCache(const ModelConfig& config, int64_t max_tokens, std::shared_ptr<KvBlockAllocator> blocks,
          KvFormat format = {});
  ~KvCache();
  KvCache(KvCache&& other) noexcept;
  KvCache& operator=(KvCache&& other) noexcept;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t length() const { return length_; }  // tokens stored = RoPE position of the next one
  int64_t max_tokens() const { return max_tokens_; }
  int64_t row_elems() const { return row_elems_; }  // n_kv_heads * head_dim
  int64_t row_bytes() const { return row_bytes_; }  // one stored row in format()
  const KvFormat& format() const { return format_; }
  int64_t block_tokens() const { return int64_t{1} << shift_; }

  // Makes room for n more tokens in every layer: allocates blocks and copies any shared block
  // that the new positions fall in. Throws qcoder::Error past max_tokens and KvOutOfMemory
  // when the allocator runs dry (blocks obtained so far stay attached; length is unchanged).
  void reserve_more(int64_t n);
  // Blocks reserve_more(n) would take from the allocator (new ones and copies).
  int64_t blocks_needed(int64_t n) const;
  // The stored key/value row (row_bytes() bytes in format()) of `layer` at position `pos`.
  uint8_t* key_row(int64_t layer, int64_t pos) {
    return table_[static_cast<size_t>(pos >> shift_)] +
           (((layer * 2) << shift_) + (pos & mask_)) * row_bytes_;
  }
  uint8_t* value_row(int64_t layer, int64_t pos) {
    return table_[static_cast<size_t>(pos >> shift_)] +
           (((layer * 2 + 1) << shift_) + (pos & mask_)) * row_bytes_;
  }
  // Encodes row_elems() floats of keys and of values into position pos of layer (a reserved
  // position; ops::kv_encode_row, bitwise ref::kv_encode_row).
  void store(int64_t layer, int64_t pos, const float* keys, const float* values);
  // Decodes a stored row back to row_elems() floats.
  void load_key(int64_t layer, int64_t pos, float* out);
  void load_value(int64_t layer, int64_t pos, float* out);
  // Marks n more positions as filled (after every layer has written them).
  void commit(int64_t n) { length_ += n; }
  // Drops positions past n (n <= length), as mlx-lm's trim; whole blocks past n are released.
  void truncate(int64_t n);
  // Releases every block; length becomes 0.
  void clear() { truncate(0); }

  // Starts an empty cache on already-computed blocks (a cached prefix): takes a reference to
  // each and sets length = tokens, which must lie within them. The blocks must come from
  // this cache's allocator.
  void attach_prefix(std::span<const int32_t> blocks, int64_t tokens);
  // The blocks holding positions [0, length) (and possibly reserved ones after).
  std::span<const int32_t> blocks() const { return ids_; }

  uint64_t bytes() const;  // memory of the blocks this cache references

 private:
  void release_all();
  void append_block();        // throws KvOutOfMemory
  void make_private(size_t);  // copy-on-write of block i

  KvFormat format_;
  int64_t row_elems_ = 0;
  int64_t row_bytes_ = 0;
  int64_t layers_ = 0;
  int64_t max_tokens_ = 0;
  int64_t length_ = 0;
  int shift_ = 0;
  int64_t mask_ = 0;
  std::shared_ptr<KvBlockAllocator> alloc_;
  std::vector<int32_t> ids_;   // block ids, in position order
  std::vector<uint8_t*> table_;  // their data, for key_row/value_row
};

}  // namespace qcoder
