// Finds added tokens (<|im_start|>, <tool_call>, ...) in raw text the way tokenizers'
// AddedVocabulary does: an Aho-Corasick search with leftmost-longest semantics over every added
// token's exact content, case-sensitive, non-overlapping, scanning on after each match.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer_json.h"

namespace qcoder::tok {

class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(const std::vector<AddedTokenDef>& tokens);

  struct Match {
    size_t begin, end;
    int32_t id;
    bool special;
  };
  // The leftmost match starting at or after pos, the longest of those; nullopt if none.
  std::optional<Match> find(std::string_view text, size_t pos) const;
  bool empty() const { return nodes_.size() <= 1; }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // byte -> node
    int32_t token = -1;                             // index into tokens_ when a token ends here
  };
  int32_t child(int32_t node, uint8_t byte) const;

  std::vector<Node> nodes_;  // nodes_[0] is the root
  std::vector<AddedTokenDef> tokens_;
  bool first_byte_[256] = {};
  int single_first_byte_ = -1;  // when all tokens start with the same byte: memchr for it
};

}  // namespace qcoder::tok
