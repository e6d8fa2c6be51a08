#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/unicode.h"

namespace qcoder::tok {
namespace {

struct Alphabet {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // the alphabet lies below U+0144

  Alphabet() {
    to_byte.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = printable ? char32_t(b) : char32_t(256 + next++);
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

char32_t byte_to_char(uint8_t byte) { return alphabet().to_char[byte]; }

int char_to_byte(char32_t cp) {
  return cp < alphabet().to_byte.size() ? alphabet().to_byte[cp] : -1;
}

std::string token_to_bytes(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  const auto* s = reinterpret_cast<const uint8_t*>(token.data());
  for (size_t i = 0, len = 0; i < token.size(); i += len) {
    const int b = char_to_byte(decode_utf8(s + i, &len));
    if (b < 0) return std::string(token);
    out += static_cast<char>(b);
  }
  return out;
}

std::string bytes_to_token(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) append_utf8(out, byte_to_char(b));
  return out;
}

}  // namespace qcoder::tok
