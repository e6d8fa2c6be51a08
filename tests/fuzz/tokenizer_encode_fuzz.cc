// Fuzzes Tokenizer::encode in its three added-token modes on arbitrary bytes. Invariants:
// invalid UTF-8 throws qcoder::Error (nothing else), valid UTF-8 encodes to real token ids, text
// that NFC leaves alone decodes back to itself, and streaming decode equals decode.
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "tokenizer/nfc.h"
#include "tokenizer/unicode.h"
#include "tokenizer_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qcoder;
  const Tokenizer& tok = fuzz::qwen_tokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool valid = tok::find_invalid_utf8(text) == std::string::npos;
  std::string normalized;
  const bool nfc_stable = valid && !tok::nfc_normalize(text, normalized);
  for (int mode = 0; mode < 3; ++mode) {
    std::vector<int32_t> ids;
    try {
      ids = mode == 0   ? tok.encode(text)
            : mode == 1 ? tok.encode(text, false)
                        : tok.encode_ordinary(text);
    } catch (const Error&) {
      if (valid) fuzz::fail("valid UTF-8 was refused");
      continue;
    }
    if (!valid) fuzz::fail("invalid UTF-8 was accepted");
    for (int32_t id : ids)
      if (!tok.has_token(id)) fuzz::fail("encode produced an unknown id");
    const std::string decoded = tok.decode(ids);
    if (nfc_stable && decoded != text) fuzz::fail("decode(encode(text)) != text for NFC text");
    if (mode == 2 && !nfc_stable && decoded != normalized)
      fuzz::fail("decode(encode_ordinary(text)) != NFC(text)");
    StreamingDetokenizer stream(tok, false);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    if (streamed != decoded) fuzz::fail("streaming decode differs from decode");
  }
  return 0;
}
