#include "tokenizer/bpe.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <queue>

namespace qcoder::tok {
namespace {
// Pre-tokens up to this many bytes merge in flat arrays on the stack (a scan per merge is
// cheaper than a heap at this size); longer ones (long words, digit-free symbol runs) use a
// heap so that a 20k-byte word stays O(n log n).
constexpr size_t kShortWord = 64;
}  // namespace

BpeModel::BpeModel(std::span<const MergeDef> merges, const std::array<int32_t, 256>& byte_ids) {
  std::copy(byte_ids.begin(), byte_ids.end(), byte_ids_);
  size_t cap = 16;
  while (cap < merges.size() * 2) cap <<= 1;
  slots_.assign(cap, Slot{kEmpty, kNoMerge, -1});
  mask_ = cap - 1;
  shift_ = 64 - std::countr_zero(cap);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const MergeDef& m = merges[rank];
    const uint64_t key = (uint64_t(uint32_t(m.left)) << 32) | uint32_t(m.right);
    size_t i = (key * 0x9E3779B97F4A7C15ull) >> shift_;
    while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
    slots_[i] = Slot{key, static_cast<uint32_t>(rank), m.merged};
  }
}

void BpeModel::encode_word(std::string_view bytes, std::vector<int32_t>& out) const {
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() == 1)
    out.push_back(byte_ids_[b[0]]);
  else if (bytes.size() <= kShortWord)
    encode_short(b, bytes.size(), out);
  else
    encode_long(b, bytes.size(), out);
}

void BpeModel::encode_short(const uint8_t* bytes, size_t n, std::vector<int32_t>& out) const {
  int32_t ids[kShortWord];
  uint32_t ranks[kShortWord];  // ranks[i]: merging symbols i and i+1
  int32_t merged[kShortWord];
  for (size_t i = 0; i < n; ++i) ids[i] = byte_ids_[bytes[i]];
  const auto pair_at = [&](size_t i) {
    const Slot* s = find(ids[i], ids[i + 1]);
    ranks[i] = s ? s->rank : kNoMerge;
    merged[i] = s ? s->merged : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) pair_at(i);
  size_t m = n;
  while (m > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < m; ++i)
      if (ranks[i] < ranks[best]) best = i;
    if (ranks[best] == kNoMerge) break;
    ids[best] = merged[best];
    // Symbol best+1 is gone: shift the symbols after it, and the pairs after (best+1, best+2).
    std::memmove(ids + best + 1, ids + best + 2, (m - best - 2) * sizeof(int32_t));
    if (m >= best + 3) {
      std::memmove(ranks + best + 1, ranks + best + 2, (m - best - 3) * sizeof(uint32_t));
      std::memmove(merged + best + 1, merged + best + 2, (m - best - 3) * sizeof(int32_t));
    }
    --m;
    if (best > 0) pair_at(best - 1);
    if (best + 1 < m) pair_at(best);
  }
  out.insert(out.end(), ids, ids + m);
}

void BpeModel::encode_long(const uint8_t* bytes, size_t n, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
    bool gone;
  };
  struct Candidate {
    uint32_t rank;
    uint32_t pos;  // the left symbol's index: among equal ranks the leftmost merges first
    int32_t merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Symbol> sym(n);
  for (size_t i = 0; i < n; ++i)
    sym[i] = {byte_ids_[bytes[i]], static_cast<int32_t>(i) - 1,
              i + 1 < n ? static_cast<int32_t>(i + 1) : -1, false};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto push = [&](int32_t left) {
    const int32_t right = sym[left].next;
    if (right < 0) return;
    if (const Slot* s = find(sym[left].id, sym[right].id))
      queue.push({s->rank, static_cast<uint32_t>(left), s->merged});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = sym[c.pos];
    if (left.gone || left.next < 0) continue;
    // A stale entry: the pair at pos changed since it was queued (the merged token differs,
    // because a symbol's string only grows).
    const Slot* s = find(left.id, sym[left.next].id);
    if (!s || s->merged != c.merged) continue;
    Symbol& right = sym[left.next];
    left.id = c.merged;
    right.gone = true;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = static_cast<int32_t>(c.pos);
    if (left.prev >= 0) push(left.prev);
    push(static_cast<int32_t>(c.pos));
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace qcoder::tok
