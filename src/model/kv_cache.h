// Per-sequence key/value cache: post-RoPE keys and values in float32, [layer][pos][kv_head][dim].
// Contiguous and growable; the server's paged, shareable cache replaces it later.
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
  // Key/value rows of `layer` starting at position `pos`.
  float* keys(int64_t layer, int64_t pos) { return &k_[layer][pos * row_floats_]; }
  float* values(int64_t layer, int64_t pos) { return &v_[layer][pos * row_floats_]; }
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
