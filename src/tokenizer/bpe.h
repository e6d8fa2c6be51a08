// Byte-level BPE by merge rank: a pre-token's bytes start as one symbol each, and the adjacent
// pair with the lowest merge rank (the leftmost of equal ones) is merged until none is left —
// the result of tokenizers' Word::merge_all.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_json.h"

namespace qcoder::tok {

class BpeModel {
 public:
  // byte_ids[b] is the id of byte b's token. A pair listed twice keeps its last rank, as in
  // tokenizers (its merge map is filled in rank order).
  BpeModel(std::span<const MergeDef> merges, const std::array<int32_t, 256>& byte_ids);

  // Appends the ids of one pre-token (raw bytes, not byte-level characters) to out.
  void encode_word(std::string_view bytes, std::vector<int32_t>& out) const;

  size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    uint64_t key;  // left << 32 | right; kEmpty when unused
    uint32_t rank;
    int32_t merged;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static constexpr uint32_t kNoMerge = UINT32_MAX;

  // The rank and result of merging (left, right), or rank kNoMerge.
  const Slot* find(int32_t left, int32_t right) const {
    const uint64_t key = (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
    for (size_t i = (key * 0x9E3779B97F4A7C15ull) >> shift_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s;
      if (s.key == kEmpty) return nullptr;
    }
  }

  void encode_short(const uint8_t* bytes, size_t n, std::vector<int32_t>& out) const;
  void encode_long(const uint8_t* bytes, size_t n, std::vector<int32_t>& out) const;

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  int32_t byte_ids_[256];
};

}  // namespace qcoder::tok
