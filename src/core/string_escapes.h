// Backslash escapes in string literals, decoded to UTF-8. One decoder serves every dialect the
// project reads (tokenizer.json, json.loads and ast.literal_eval on model output, jinja2 string
// literals), so that hex digits, surrogate pairs and code point limits are handled in one place.
// The callers keep their own loops (quotes, raw bytes, positions) and their own error text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qcoder::escapes {

enum class Syntax : uint8_t {
  // \" \\ \/ \b \f \n \r \t \uXXXX, and a \uD800-\uDBFF \uDC00-\uDFFF pair is one code point.
  kJson,
  // \<newline> \\ \' \" \a \b \f \n \r \t \v \ooo \xXX \uXXXX \UXXXXXXXX; any other escape stays
  // as written (backslash kept). Surrogate escapes never pair (Python keeps them apart).
  kPython,
};

// What becomes of a surrogate code point that is not half of a JSON pair.
enum class LoneSurrogate : uint8_t {
  kReject,   // an error
  kReplace,  // U+FFFD
  kKeep,     // encoded as it is (see append_utf8), as a Python str holds it
};

struct Dialect {
  Syntax syntax;
  LoneSurrogate lone_surrogate;
  bool bytes = false;  // a Python bytes literal: \u and \U are not escapes there
};

// The dialects the project reads.
inline constexpr Dialect kTokenizerJson{Syntax::kJson, LoneSurrogate::kReject};
inline constexpr Dialect kPythonJsonLoads{Syntax::kJson, LoneSurrogate::kReplace};
inline constexpr Dialect kPythonStrLiteral{Syntax::kPython, LoneSurrogate::kReplace};
inline constexpr Dialect kPythonBytesLiteral{Syntax::kPython, LoneSurrogate::kReplace, true};
inline constexpr Dialect kJinjaStringLiteral{Syntax::kPython, LoneSurrogate::kKeep};

enum class Status : uint8_t {
  kOk,
  kEndOfInput,         // the backslash is the last byte
  kUnknownEscape,      // JSON: not one of its escapes (Python keeps unknown escapes)
  kTruncatedHex,       // fewer bytes left than the escape's hex digits
  kBadHex,             // a byte among those digits is not hex
  kNotACodePoint,      // \UXXXXXXXX above U+10FFFF
  kNamedEscape,        // \N{...}: no name table here
  kLoneHighSurrogate,  // kReject only
  kLoneLowSurrogate,   // kReject only
  kBadSurrogatePair,   // kReject only: \uD8xx then a \u escape that is not \uDCxx-\uDFxx
};

// Decodes the escape that starts at s[i] (a backslash), appends its UTF-8 to out and moves i
// past it. On an error nothing is appended and i is left where a byte position should point:
// just past the byte at fault, at the first hex digit for kTruncatedHex, at the end for
// kEndOfInput.
Status decode_escape(std::string_view s, size_t& i, const Dialect& dialect, std::string& out);

}  // namespace qcoder::escapes
