// Per-sequence key/value cache: post-RoPE keys and values in float32, one row of
// [kv_head][dim] per (layer, position).
//
// Contract for every user (attention kernels included): rows are reached only through
// key_row/value_row, one position at a time; rows of different positions are NOT assumed to be
// contiguous, so the storage can become paged and shared between sequences without touching
// the kernels. Today's storage is one growable buffer per layer.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace qcoder {

class KvCache {
 public:
  // max_tokens bounds the sequence length (at most the model's context).
  KvCache(const ModelConfig& config, int64_t max_tokens);

  int64_t length() const { return length_; }  // tokens stored = RoPE position of the next one
  int64_t max_tokens() const { return max_tokens_; }
  int64_t row_floats() const { return row_floats_; }  // n_kv_heads * head_dim

  // Makes room for n more tokens in every layer (throws qcoder::Error past max_tokens).
  void reserve_more(int64_t n);
  // The key/value row (row_floats() floats) of `layer` at position `pos`.
  float* key_row(int64_t layer, int64_t pos) { return &k_[layer][pos * row_floats_]; }
  float* value_row(int64_t layer, int64_t pos) { return &v_[layer][pos * row_floats_]; }
  // Marks n more positions as filled (after every layer has written them).
  void commit(int64_t n) { length_ += n; }
  // Drops positions past n (n <= length), as mlx-lm's trim.
  void truncate(int64_t n);
  uint64_t bytes() const;

 private:
  int64_t row_floats_;
  int64_t max_tokens_;
  int64_t length_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace qcoder
