// The byte-level alphabet of GPT-2 (bytes_to_unicode): every byte is shown as a printable
// code point (printable Latin-1 as itself, the rest from U+0100 on: space is 'Ġ', newline 'Ċ').
// BPE tokens are strings over this alphabet.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qcoder::tok {

char32_t byte_to_char(uint8_t byte);
// The byte a code point of the alphabet stands for, or -1.
int char_to_byte(char32_t cp);

// "Ġhi" -> " hi" as Hugging Face's ByteLevel decoder does per token: when a character is not in
// the alphabet (an added token such as "<tool call>" with a real space), the token's own UTF-8
// bytes are used unchanged. token must be valid UTF-8.
std::string token_to_bytes(std::string_view token);
// " hi" -> "Ġhi".
std::string bytes_to_token(std::string_view bytes);

}  // namespace qcoder::tok
