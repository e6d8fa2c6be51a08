// Reads a Hugging Face tokenizer.json of the Qwen2/Qwen3 kind (byte-level BPE, NFC, the Qwen
// pre-tokenizer regex) into plain tables, checking every field that changes the result.
// Anything this tokenizer does not implement is refused with an error naming the field, rather
// than tokenized differently from Hugging Face.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/string_id_map.h"

namespace qcoder::tok {

// The pre-tokenizer regex that src/tokenizer/pretokenizer.cc implements.
extern const char* const kQwenSplitRegex;

struct AddedTokenDef {
  int32_t id;
  std::string content;
  bool special;
};

struct MergeDef {
  int32_t left, right, merged;  // vocab ids; rank = position in TokenizerData::merges
};

struct TokenizerData {
  std::vector<std::string> vocab;  // model.vocab by id (0..n-1), byte-level strings ("Ġworld")
  StringIdMap vocab_map;           // over vocab
  std::vector<MergeDef> merges;    // in rank order
  std::vector<AddedTokenDef> added_tokens;
  bool nfc = true;             // normalizer NFC (false: no normalizer)
  bool ignore_merges = false;  // a word that is a whole vocab token skips BPE
};

// source names the file in errors. Throws qcoder::Error.
TokenizerData parse_tokenizer_json(std::string_view json, const std::string& source);

}  // namespace qcoder::tok
