// The Qwen3 / Qwen3-Coder tokenizer: byte-level BPE read from a Hugging Face tokenizer.json,
// producing exactly the ids and text of Hugging Face tokenizers 0.23.2 (encode with
// add_special_tokens=false, decode). See docs/TOKENIZER.md.
//
// Encoding: added tokens (<|im_start|>, <tool_call>, ...) are found in the raw text
// (leftmost-longest); each piece between them is NFC-normalized, cut into pre-tokens by the
// Qwen regex, mapped to the byte-level alphabet and merged by BPE rank.
// Decoding: token strings back to bytes, then UTF-8 with U+FFFD per ill-formed subpart.
//
// Thread safety: a loaded Tokenizer is immutable; encode() and decode() may run concurrently
// (each thread keeps its own word cache).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qcoder {

class Tokenizer {
 public:
  // Reads MODEL_DIR/tokenizer.json. Throws qcoder::Error naming the file and field when it is
  // missing, not JSON, or uses a feature this tokenizer does not implement.
  static std::unique_ptr<Tokenizer> load(const std::string& model_dir);
  // The same from the file's text; source names it in errors.
  static std::unique_ptr<Tokenizer> from_json(std::string_view json,
                                              const std::string& source = "tokenizer.json");
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // text must be valid UTF-8 (throws qcoder::Error with the byte offset otherwise).
  // parse_special = true: every added token in the text becomes its id (Hugging Face's
  // default). false: special ones (<|im_start|>, ...) are tokenized as plain text while the
  // non-special ones (<tool_call>, <think>, FIM) are still matched, as
  // split_special_tokens=True does.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;
  // No added token is matched at all: all of text goes through BPE.
  std::vector<int32_t> encode_ordinary(std::string_view text) const;

  // Ids the tokenizer does not have (the model's padding rows, 151669..151935 for Qwen3) are
  // skipped, as Hugging Face does. skip_special drops special added tokens only; <tool_call>
  // and the other non-special ones stay.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // Added tokens first, then the vocabulary ("Ġworld" form). E.g. token_id("<|im_end|>").
  std::optional<int32_t> token_id(std::string_view token) const;
  // The token's string as stored ("Ġworld", "<|im_end|>"), if the id exists.
  std::optional<std::string_view> id_to_token(int32_t id) const;
  // The bytes the id decodes to (before UTF-8 repair); empty for unknown ids.
  std::string_view token_bytes(int32_t id) const;
  bool has_token(int32_t id) const;
  bool is_special(int32_t id) const;
  bool is_added(int32_t id) const;
  // Number of real tokens, added ones included (151,669 for Qwen3); ids lie below it.
  size_t vocab_size() const;
  // Heap bytes held by the tables (for the benchmark).
  size_t memory_bytes() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns a stream of generated ids into text as soon as it is complete UTF-8: a character whose
// bytes are split across tokens is held back until its last byte arrives (never emitted as
// U+FFFD), and the concatenation of every push() and the final flush() equals
// Tokenizer::decode of all the ids. One per output stream; the Tokenizer must outlive it.
class StreamingDetokenizer {
 public:
  StreamingDetokenizer(const Tokenizer& tok, bool skip_special);
  // Text completed by id (may be empty).
  std::string push(int32_t id);
  // The rest at the end of the stream: an unfinished character becomes U+FFFD here.
  std::string flush();
  // Bytes held back (0-3), waiting for the rest of a character.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace qcoder
