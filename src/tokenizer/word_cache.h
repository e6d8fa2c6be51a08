// A bounded cache of pre-token -> ids (source code repeats its words). One per thread and
// tokenizer (see tokenizer.cc), so encode() stays const and lock-free; it empties itself when
// full instead of evicting.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "tokenizer/hash.h"

namespace qcoder::tok {

class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 48;  // longer pre-tokens are rare: not cached

  WordCache() : slots_(kSlots) {}

  // The cached ids of word (hash = hash_bytes(word)), or nullptr.
  const int32_t* find(std::string_view word, uint64_t hash, size_t* n_ids) const {
    const uint64_t tag = hash | 1;
    for (size_t i = hash & kMask;; i = (i + 1) & kMask) {
      const Slot& s = slots_[i];
      if (s.tag == 0) return nullptr;
      if (s.tag == tag && s.word_len == word.size() &&
          std::memcmp(words_.data() + s.word_off, word.data(), word.size()) == 0) {
        *n_ids = s.n_ids;
        return ids_.data() + s.ids_off;
      }
    }
  }

  void insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t n_ids) {
    if (used_ >= kMaxEntries) clear();
    size_t i = hash & kMask;
    while (slots_[i].tag != 0) i = (i + 1) & kMask;
    slots_[i] =
        Slot{hash | 1, static_cast<uint32_t>(words_.size()), static_cast<uint32_t>(ids_.size()),
             static_cast<uint16_t>(word.size()), static_cast<uint16_t>(n_ids)};
    words_.insert(words_.end(), word.begin(), word.end());
    ids_.insert(ids_.end(), ids, ids + n_ids);
    ++used_;
  }

  void clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    words_.clear();
    ids_.clear();
    used_ = 0;
  }

 private:
  static constexpr size_t kSlots = size_t{1} << 16;
  static constexpr size_t kMask = kSlots - 1;
  static constexpr size_t kMaxEntries = kSlots / 2;  // load factor 1/2 keeps probes short

  struct Slot {
    uint64_t tag = 0;  // hash | 1; 0 marks an empty slot
    uint32_t word_off = 0, ids_off = 0;
    uint16_t word_len = 0, n_ids = 0;
  };
  std::vector<Slot> slots_;
  std::vector<char> words_;
  std::vector<int32_t> ids_;
  size_t used_ = 0;
};

}  // namespace qcoder::tok
