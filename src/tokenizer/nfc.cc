#include "tokenizer/nfc.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace qcoder::tok {
namespace {

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

bool is_hangul_syllable(char32_t cp) { return cp >= kSBase && cp < kSBase + kSCount; }

void decompose(char32_t cp, std::u32string& out) {
  if (is_hangul_syllable(cp)) {
    const char32_t s = cp - kSBase;
    out += kLBase + s / kNCount;
    out += kVBase + (s % kNCount) / kTCount;
    if (s % kTCount) out += kTBase + s % kTCount;
    return;
  }
  const std::u32string_view d = canonical_decomposition(cp);
  if (d.empty())
    out += cp;
  else
    out += d;
}

char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (is_hangul_syllable(a) && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  return primary_composite(a, b);
}

// NFC of one segment (a stable code point followed by unstable ones, or a prefix of unstable
// ones): full decomposition, canonical ordering, canonical composition (UAX #15).
void normalize_segment(std::string_view seg, std::string& out) {
  std::u32string buf;
  const auto* s = reinterpret_cast<const uint8_t*>(seg.data());
  for (size_t i = 0, len = 0; i < seg.size(); i += len) decompose(decode_utf8(s + i, &len), buf);

  // Canonical ordering: a stable sort of each run of non-starters by combining class.
  std::basic_string<uint8_t> ccc(buf.size(), 0);
  for (size_t i = 0; i < buf.size(); ++i) ccc[i] = combining_class(buf[i]);
  for (size_t i = 1; i < buf.size(); ++i) {
    for (size_t j = i; j > 0 && ccc[j] != 0 && ccc[j - 1] > ccc[j]; --j) {
      std::swap(buf[j], buf[j - 1]);
      std::swap(ccc[j], ccc[j - 1]);
    }
  }

  // Canonical composition. last_class 256 marks "no starter yet" so that a leading
  // non-starter composes with nothing.
  size_t starter = 0, kept = 1;
  int last_class = ccc[0] == 0 ? 0 : 256;
  for (size_t i = 1; i < buf.size(); ++i) {
    const char32_t ch = buf[i];
    const int cls = ccc[i];
    const char32_t composite = last_class == 256 ? 0 : compose(buf[starter], ch);
    if (composite != 0 && (last_class < cls || last_class == 0)) {
      buf[starter] = composite;
      continue;
    }
    if (cls == 0) starter = kept;
    last_class = cls;
    buf[kept++] = ch;
  }
  buf.resize(kept);
  for (char32_t cp : buf) append_utf8(out, cp);
}

}  // namespace

bool nfc_normalize(std::string_view text, std::string& out) {
  const CharClassTable& cls = CharClassTable::get();
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  // Segments split before every stable code point (combining class 0, unchanged by NFC, never
  // the second half of a composition): NFC of the text is the concatenation of their NFCs.
  // stable_start is where the current segment begins; copied is how far out has the input.
  size_t copied = 0, stable_start = 0, i = 0;
  bool changed = false;
  std::string seg_out;
  while (i < n) {
    if (s[i] < 0x80) {
      stable_start = i++;
      continue;
    }
    size_t len;
    const char32_t cp = decode_utf8(s + i, &len);
    if (!(cls(cp) & kNfcUnstable)) {
      stable_start = i;
      i += len;
      continue;
    }
    size_t end = i + len;  // the segment goes on to the next stable code point
    while (end < n && s[end] >= 0x80) {
      size_t l2;
      if (!(cls(decode_utf8(s + end, &l2)) & kNfcUnstable)) break;
      end += l2;
    }
    const std::string_view seg = text.substr(stable_start, end - stable_start);
    seg_out.clear();
    normalize_segment(seg, seg_out);
    if (seg_out != seg) {
      if (!changed) {
        out.clear();
        out.reserve(n + 16);
        changed = true;
      }
      out.append(text.data() + copied, stable_start - copied);
      out += seg_out;
      copied = end;
    }
    stable_start = i = end;
  }
  if (changed) out.append(text.data() + copied, n - copied);
  return changed;
}

}  // namespace qcoder::tok
