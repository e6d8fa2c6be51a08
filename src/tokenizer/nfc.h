// Unicode Normalization Form C with the Unicode 9.0 data that tokenizers 0.23.2 normalizes with
// (crate unicode-normalization-alignments 0.1.12): code points assigned after 9.0 pass through
// as starters that compose with nothing.
#pragma once

#include <string>
#include <string_view>

namespace qcoder::tok {

// Returns false, leaving out alone, when NFC(text) == text (the common case, found by a
// quick scan); otherwise sets out = NFC(text) and returns true. text must be valid UTF-8.
bool nfc_normalize(std::string_view text, std::string& out);

}  // namespace qcoder::tok
