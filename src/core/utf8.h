// UTF-8 encoding of one code point: the lowest layer's copy, so that string decoders in any
// library (tokenizer, chat) share it.
#pragma once

#include <string>

namespace qcoder {

// Appends cp as 1-4 bytes. Surrogates (U+D800-U+DFFF) are encoded as they are (3 bytes that
// strict UTF-8 rejects), for callers that must carry Python's lone surrogates through.
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace qcoder
