// UTF-8 and the Python str semantics the template engine copies: code-point indexing,
// isspace/strip, isprintable (repr), lower/upper/title, and Unicode decimal digits (int()).
// Tables come from Python itself (tests/reference/make_jinja_unicode_tables.py).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qcoder::jinja::unicode {

// Decodes one code point at s[i], advancing i. Invalid bytes decode as U+FFFD (one byte each).
char32_t next(std::string_view s, size_t& i);
void append(std::string& out, char32_t c);
std::vector<char32_t> decode(std::string_view s);
std::string encode(const std::vector<char32_t>& cps);
size_t length(std::string_view s);  // in code points
// Byte offset of code point index cp (clamped to s.size()).
size_t offset_of(std::string_view s, size_t cp);

bool is_space(char32_t c);      // str.isspace
bool is_printable(char32_t c);  // str.isprintable
bool is_cased(char32_t c);
int decimal_value(char32_t c);  // unicodedata.decimal, or -1

std::string lower(std::string_view s);
std::string upper(std::string_view s);
std::string title(std::string_view s);       // str.title
std::string capitalize(std::string_view s);  // str.capitalize (3.8+: first char titlecased)
void append_lower(std::string& out, char32_t c);
void append_upper(std::string& out, char32_t c);
void append_title(std::string& out, char32_t c);
bool is_lower(std::string_view s);  // str.islower
bool is_upper(std::string_view s);  // str.isupper

// str.strip / lstrip / rstrip: with chars empty-and-not-given, Unicode whitespace.
std::string strip(std::string_view s, bool left, bool right);
std::string strip_chars(std::string_view s, std::string_view chars, bool left, bool right);

// Python's escape text for c: \xhh below U+0100, else \uxxxx or \Uxxxxxxxx (what repr and
// backslashreplace write).
void append_python_escape(std::string& out, char32_t c);

// The length of the valid UTF-8 prefix of s that ends on a complete code point boundary
// (an incomplete multi-byte sequence at the end is excluded).
size_t complete_prefix(std::string_view s);

}  // namespace qcoder::jinja::unicode
