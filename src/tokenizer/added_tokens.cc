#include "tokenizer/added_tokens.h"

#include <cstring>

namespace qcoder::tok {

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedTokenDef>& tokens) : tokens_(tokens) {
  nodes_.emplace_back();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    int32_t node = 0;
    for (unsigned char b : tokens_[t].content) {
      int32_t next = child(node, b);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_[node].next.emplace_back(b, next);
        nodes_.emplace_back();
      }
      node = next;
    }
    nodes_[node].token = static_cast<int32_t>(t);
    first_byte_[static_cast<unsigned char>(tokens_[t].content[0])] = true;
  }
  int distinct = 0;
  for (int b = 0; b < 256; ++b)
    if (first_byte_[b]) ++distinct, single_first_byte_ = b;
  if (distinct != 1) single_first_byte_ = -1;
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t byte) const {
  for (const auto& [b, next] : nodes_[node].next)
    if (b == byte) return next;
  return -1;
}

std::optional<AddedTokenMatcher::Match> AddedTokenMatcher::find(std::string_view text,
                                                                size_t pos) const {
  if (empty()) return std::nullopt;
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  while (pos < n) {
    if (single_first_byte_ >= 0) {
      const void* hit = std::memchr(s + pos, single_first_byte_, n - pos);
      if (!hit) return std::nullopt;
      pos = static_cast<const uint8_t*>(hit) - s;
    } else {
      while (pos < n && !first_byte_[s[pos]]) ++pos;
      if (pos >= n) return std::nullopt;
    }
    int32_t node = 0, best = -1;
    size_t best_end = 0;
    for (size_t i = pos; i < n; ++i) {
      node = child(node, s[i]);
      if (node < 0) break;
      if (nodes_[node].token >= 0) best = nodes_[node].token, best_end = i + 1;
    }
    if (best >= 0) return Match{pos, best_end, tokens_[best].id, tokens_[best].special};
    ++pos;
  }
  return std::nullopt;
}

}  // namespace qcoder::tok
