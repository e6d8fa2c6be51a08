// token string -> id over strings stored elsewhere (the vocabulary, indexed by id): an
// open-addressing table of (hash tag, id), so that building it for 151k tokens allocates
// nothing per entry and a probe rarely has to touch a string.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/hash.h"

namespace qcoder::tok {

class StringIdMap {
 public:
  // strings[id] for id in [0, strings.size()); the map keeps no reference to them. Returns
  // the id of a string that repeats an earlier one, or -1 when all are distinct.
  int64_t build(const std::vector<std::string>& strings) {
    size_t cap = 16;
    while (cap < strings.size() * 2) cap <<= 1;
    slots_.assign(cap, kEmpty);
    mask_ = cap - 1;
    int64_t repeated = -1;
    for (size_t id = 0; id < strings.size(); ++id) {
      const uint64_t h = hash_bytes(strings[id]);
      size_t i = h & mask_;
      for (; slots_[i] != kEmpty; i = (i + 1) & mask_)
        if (tag(slots_[i]) == (h >> 32) && strings[id_of(slots_[i])] == strings[id] && repeated < 0)
          repeated = static_cast<int64_t>(id);
      slots_[i] = (h >> 32 << 32) | id;
    }
    return repeated;
  }

  std::optional<int32_t> find(std::string_view key, const std::vector<std::string>& strings) const {
    if (slots_.empty()) return std::nullopt;
    const uint64_t h = hash_bytes(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t s = slots_[i];
      if (s == kEmpty) return std::nullopt;
      if (tag(s) == (h >> 32) && strings[id_of(s)] == key) return id_of(s);
    }
  }

  size_t memory_bytes() const { return slots_.capacity() * sizeof(uint64_t); }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t tag(uint64_t slot) { return slot >> 32; }
  static int32_t id_of(uint64_t slot) { return static_cast<int32_t>(slot & 0xFFFFFFFFu); }

  std::vector<uint64_t> slots_;  // hash >> 32 << 32 | id
  size_t mask_ = 0;
};

}  // namespace qcoder::tok
