// Fuzzes Tokenizer::decode and StreamingDetokenizer on arbitrary id sequences (3 input bytes per
// id, spread over the vocabulary, the added tokens, the padding range and beyond). Invariants:
// the output is valid UTF-8, and streaming gives the same text with at most 3 bytes held back.
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/unicode.h"
#include "tokenizer_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qcoder;
  const Tokenizer& tok = fuzz::qwen_tokenizer();
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 3 <= size; i += 3) {
    const uint32_t v = data[i] | (uint32_t(data[i + 1]) << 8) | (uint32_t(data[i + 2]) << 16);
    // Mostly byte tokens (they split characters), else anywhere up to past the padding rows.
    ids.push_back(v & 1 ? static_cast<int32_t>((v >> 1) % 256)
                        : static_cast<int32_t>((v >> 1) % 152100) - 8);
  }
  for (bool skip : {false, true}) {
    const std::string text = tok.decode(ids, skip);
    if (tok::find_invalid_utf8(text) != std::string::npos)
      fuzz::fail("decode produced invalid UTF-8");
    StreamingDetokenizer stream(tok, skip);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = stream.push(id);
      if (tok::find_invalid_utf8(piece) != std::string::npos)
        fuzz::fail("push produced invalid UTF-8");
      if (stream.pending_bytes() > 3) fuzz::fail("more than 3 bytes held back");
      streamed += piece;
    }
    streamed += stream.flush();
    if (streamed != text) fuzz::fail("streaming decode differs from decode");
  }
  return 0;
}
