// The Qwen2/Qwen3 pre-tokenizer: the text between added tokens (after NFC) is cut where the
// regex kQwenSplitRegex matches, each match becoming one pre-token (Split, Isolated). Written
// out by hand with Oniguruma's semantics: alternatives in order, the first that matches wins;
// greedy quantifiers with backtracking; \s is White_Space; \p{L}, \p{N} per Unicode 16.0;
// (?i:...) folds ſ (U+017F) to s as Unicode simple case folding does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tokenizer/unicode.h"

namespace qcoder::tok {

// End (byte offset) of the pre-token that starts at byte i < text.size(). Every position
// starts a non-empty match, so pre-tokens tile the text.
size_t pretoken_end(std::string_view text, size_t i, const CharClassTable& cls);

// Calls emit(std::string_view) for each pre-token of text (valid UTF-8), in order.
template <typename Emit>
void pretokenize(std::string_view text, Emit&& emit) {
  const CharClassTable& cls = CharClassTable::get();
  for (size_t i = 0; i < text.size();) {
    const size_t end = pretoken_end(text, i, cls);
    emit(text.substr(i, end - i));
    i = end;
  }
}

}  // namespace qcoder::tok
