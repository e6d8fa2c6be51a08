// Fuzzes the tokenizer.json reader: any bytes either load (and then encode and decode a fixed
// text without trouble) or throw qcoder::Error. Seeds: small complete tokenizer.json files.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qcoder;
  std::unique_ptr<Tokenizer> tok;
  try {
    tok = Tokenizer::from_json(std::string_view(reinterpret_cast<const char*>(data), size),
                               "fuzz.json");
  } catch (const Error&) {
    return 0;
  }
  const auto ids = tok->encode("hello <x> w\xC3\xB6rld 123 <|end|>\n\n  'll");
  (void)tok->decode(ids);
  (void)tok->decode(ids, true);
  return 0;
}
