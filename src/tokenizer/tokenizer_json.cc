#include "tokenizer/tokenizer_json.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_reader.h"

namespace qcoder::tok {

const char* const kQwenSplitRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

namespace {

using json = nlohmann::json;

// Token ids beyond this are not a real vocabulary (and would overflow the id tables).
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

// The two halves of a merge, stored back to back in an arena so that the merged token is
// the view over both.
struct RawMerge {
  size_t offset;
  uint32_t left_len, right_len;
};

class Parser {
 public:
  Parser(std::string_view text, const std::string& source) : r_(text, source), source_(source) {}

  TokenizerData run() {
    json added, normalizer, pre_tokenizer, decoder;
    bool have_model = false, have_added = false;
    std::vector<std::string> seen;
    std::string key;
    bool first = true;
    r_.expect('{');
    while (r_.next_key(key, first)) {
      if (std::find(seen.begin(), seen.end(), key) != seen.end())
        r_.fail("duplicate key \"" + key + "\"");
      seen.push_back(key);
      if (key == "model") {
        parse_model();
        have_model = true;
      } else if (key == "added_tokens") {
        added = parse_raw(key), have_added = true;
      } else if (key == "normalizer") {
        normalizer = parse_raw(key);
      } else if (key == "pre_tokenizer") {
        pre_tokenizer = parse_raw(key);
      } else if (key == "decoder") {
        decoder = parse_raw(key);
      } else {
        // version, truncation, padding, post_processor: none changes encode()/decode() as
        // defined here (no special tokens are added, nothing is truncated or padded).
        r_.raw();
      }
    }
    if (!r_.at_end()) r_.fail("unexpected text after the top-level object");
    if (!have_model) bad("model", "is missing");
    if (!have_vocab_) bad("model.vocab", "is missing");
    if (!have_merges_) bad("model.merges", "is missing");
    resolve_merges();
    check_byte_alphabet();
    check_normalizer(normalizer);
    check_pre_tokenizer(pre_tokenizer);
    check_decoder(decoder);
    if (have_added) read_added_tokens(added);
    return std::move(data_);
  }

 private:
  [[noreturn]] void bad(const std::string& field, const std::string& what) const {
    throw Error(source_ + ": " + field + " " + what);
  }

  json parse_raw(const std::string& field) {
    const size_t at = r_.pos();
    const std::string_view raw = r_.raw();
    try {
      return json::parse(raw);
    } catch (const json::exception& e) {
      throw Error(source_ + ": byte " + std::to_string(at) + ": " + field + ": " + e.what());
    }
  }

  void parse_model() {
    std::string key;
    bool first = true;
    r_.expect('{');
    while (r_.next_key(key, first)) {
      if (key == "vocab") {
        if (have_vocab_) r_.fail("duplicate key \"vocab\"");
        parse_vocab();
        have_vocab_ = true;
      } else if (key == "merges") {
        if (have_merges_) r_.fail("duplicate key \"merges\"");
        parse_merges();
        have_merges_ = true;
      } else {
        check_model_option(key, parse_raw("model." + key));
      }
    }
  }

  void check_model_option(const std::string& key, const json& v) {
    const std::string field = "model." + key;
    if (key == "type") {
      if (v != "BPE") bad(field, "is " + v.dump() + "; only BPE is supported");
    } else if (key == "dropout") {
      if (!v.is_null()) bad(field, "is " + v.dump() + "; BPE dropout is random and not supported");
    } else if (key == "continuing_subword_prefix" || key == "end_of_word_suffix") {
      if (!v.is_null() && v != "")
        bad(field, "is " + v.dump() + "; only \"\" or null is supported");
    } else if (key == "ignore_merges") {
      if (!v.is_boolean()) bad(field, "must be true or false");
      data_.ignore_merges = v.get<bool>();
    }
    // unk_token, fuse_unk, byte_fallback: never used, since every byte has a token (checked).
  }

  void parse_vocab() {
    std::vector<std::pair<std::string, int64_t>> entries;
    entries.reserve(1 << 17);
    std::string token;
    bool first = true;
    r_.expect('{');
    while (r_.next_key(token, first)) {
      const int64_t id = r_.read_int();
      if (id < 0 || id > kMaxTokenId) r_.fail("vocab id " + std::to_string(id) + " out of range");
      entries.emplace_back(std::move(token), id);
    }
    // Ids must be exactly 0..n-1, each once (what every real byte-level BPE vocabulary is).
    data_.vocab.assign(entries.size(), std::string());
    std::vector<bool> seen(entries.size(), false);
    for (auto& [tok, id] : entries) {
      if (static_cast<size_t>(id) >= entries.size())
        bad("model.vocab", "ids are not 0.." + std::to_string(entries.size() - 1) + ": \"" + tok +
                               "\" has id " + std::to_string(id));
      if (seen[id]) bad("model.vocab", "id " + std::to_string(id) + " is used twice");
      seen[id] = true;
      data_.vocab[id] = std::move(tok);
    }
    // A token listed twice would keep one id here but the last one in tokenizers: refuse it.
    if (const int64_t twice = data_.vocab_map.build(data_.vocab); twice >= 0)
      bad("model.vocab", "token \"" + data_.vocab[twice] + "\" is listed twice");
  }

  void parse_merges() {
    std::string scratch;
    bool first = true;
    r_.expect('[');
    while (r_.next_element(first)) {
      const size_t offset = arena_.size();
      if (r_.peek() == '"') {
        // Legacy "a b": exactly one space, as tokenizers' `line.split(' ')` requires.
        scratch.clear();
        r_.read_string(scratch);
        const size_t space = scratch.find(' ');
        if (space == std::string::npos || scratch.find(' ', space + 1) != std::string::npos)
          bad("model.merges[" + std::to_string(raw_merges_.size()) + "]",
              "\"" + scratch + "\" is not two tokens separated by one space");
        arena_.append(scratch, 0, space);
        arena_.append(scratch, space + 1);
        raw_merges_.push_back({offset, static_cast<uint32_t>(space),
                               static_cast<uint32_t>(scratch.size() - space - 1)});
      } else if (r_.peek() == '[') {
        r_.expect('[');
        r_.read_string(arena_);
        const size_t mid = arena_.size();
        r_.expect(',');
        r_.read_string(arena_);
        r_.expect(']');
        raw_merges_.push_back({offset, static_cast<uint32_t>(mid - offset),
                               static_cast<uint32_t>(arena_.size() - mid)});
      } else {
        r_.fail("a merge must be \"a b\" or [\"a\", \"b\"]");
      }
    }
  }

  void resolve_merges() {
    data_.merges.reserve(raw_merges_.size());
    const std::string_view arena = arena_;
    for (size_t rank = 0; rank < raw_merges_.size(); ++rank) {
      const RawMerge& m = raw_merges_[rank];
      const std::string_view left = arena.substr(m.offset, m.left_len);
      const std::string_view right = arena.substr(m.offset + m.left_len, m.right_len);
      const std::string_view both = arena.substr(m.offset, m.left_len + m.right_len);
      MergeDef def{};
      int32_t* ids[] = {&def.left, &def.right, &def.merged};
      const std::string_view parts[] = {left, right, both};
      // Trained vocabularies give merge k's token the id after merge k-1's: check that guess
      // first (a sequential read) before the hash lookup (two cache misses).
      const size_t guess =
          data_.merges.empty() ? 0 : static_cast<size_t>(data_.merges.back().merged) + 1;
      const bool guessed = guess < data_.vocab.size() && data_.vocab[guess] == both;
      for (int k = 0; k < 3; ++k) {
        if (k == 2 && guessed) {
          def.merged = static_cast<int32_t>(guess);
          break;
        }
        const auto id = data_.vocab_map.find(parts[k], data_.vocab);
        if (!id)
          bad("model.merges[" + std::to_string(rank) + "]",
              "token \"" + std::string(parts[k]) + "\" is not in the vocabulary");
        *ids[k] = *id;
      }
      data_.merges.push_back(def);
    }
  }

  void check_byte_alphabet() {
    for (int b = 0; b < 256; ++b)
      if (!data_.vocab_map.find(bytes_to_token(std::string(1, static_cast<char>(b))), data_.vocab))
        bad("model.vocab",
            "has no token for byte " + std::to_string(b) + " (not a byte-level vocabulary)");
  }

  void check_normalizer(const json& n) {
    if (n.is_null()) {
      data_.nfc = false;
      return;
    }
    const bool nfc = n.is_object() && n.value("type", "") == "NFC";
    const bool seq_nfc = n.is_object() && n.value("type", "") == "Sequence" &&
                         n.contains("normalizers") && n["normalizers"].is_array() &&
                         n["normalizers"].size() == 1 && n["normalizers"][0].is_object() &&
                         n["normalizers"][0].value("type", "") == "NFC";
    if (!nfc && !seq_nfc) bad("normalizer", "is " + n.dump() + "; only NFC (or none) is supported");
  }

  void check_pre_tokenizer(const json& p) {
    const auto is = [](const json& j, const char* key, const json& want) {
      return j.is_object() && j.contains(key) && j[key] == want;
    };
    bool ok = is(p, "type", "Sequence") && p.contains("pretokenizers") &&
              p["pretokenizers"].is_array() && p["pretokenizers"].size() == 2;
    if (ok) {
      const json& split = p["pretokenizers"][0];
      const json& byte_level = p["pretokenizers"][1];
      ok = is(split, "type", "Split") && split.contains("pattern") &&
           is(split["pattern"], "Regex", kQwenSplitRegex) && is(split, "behavior", "Isolated") &&
           is(split, "invert", false) && is(byte_level, "type", "ByteLevel") &&
           is(byte_level, "add_prefix_space", false) && is(byte_level, "use_regex", false);
    }
    if (!ok)
      bad("pre_tokenizer",
          "is not the Qwen2/Qwen3 one (Split on the Qwen regex, Isolated, then ByteLevel "
          "without prefix space or regex): " +
              p.dump().substr(0, 300));
  }

  void check_decoder(const json& d) {
    if (!(d.is_object() && d.value("type", "") == "ByteLevel"))
      bad("decoder", "is " + d.dump().substr(0, 200) + "; only ByteLevel is supported");
  }

  void read_added_tokens(const json& added) {
    if (!added.is_array()) bad("added_tokens", "must be an array");
    const auto vocab_size = static_cast<int64_t>(data_.vocab.size());
    int64_t max_added = -1;
    for (size_t i = 0; i < added.size(); ++i) {
      const json& t = added[i];
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
          !t.contains("content") || !t["content"].is_string())
        bad(field, "needs an integer \"id\" and a string \"content\"");
      AddedTokenDef def{0, t["content"].get<std::string>(), t.value("special", false)};
      if (def.content.empty()) bad(field, "has empty content");
      for (const char* flag : {"single_word", "lstrip", "rstrip"})
        if (t.value(flag, false))
          bad(field, std::string("sets ") + flag + ", which is not supported");
      if (t.value("normalized", !def.special))
        bad(field, "is normalized=true (matched after normalization), which is not supported");
      for (const AddedTokenDef& other : data_.added_tokens)
        if (other.content == def.content) bad(field, "repeats \"" + def.content + "\"");
      // The id tokenizers gives it: the vocabulary's when the content is a vocab token, else
      // the next one after the vocabulary and the added tokens so far.
      int64_t id;
      if (const auto in_vocab = data_.vocab_map.find(def.content, data_.vocab)) {
        id = *in_vocab;
      } else {
        id = max_added >= vocab_size ? max_added + 1 : vocab_size;
        max_added = id;
      }
      const int64_t given = t["id"].get<int64_t>();
      if (given != id)
        bad(field, "\"" + def.content + "\" has id " + std::to_string(given) +
                       " but tokenizers would give it " + std::to_string(id));
      def.id = static_cast<int32_t>(id);
      data_.added_tokens.push_back(std::move(def));
    }
  }

  JsonReader r_;
  const std::string& source_;
  TokenizerData data_;
  bool have_vocab_ = false, have_merges_ = false;
  std::string arena_;
  std::vector<RawMerge> raw_merges_;
};

}  // namespace

TokenizerData parse_tokenizer_json(std::string_view json_text, const std::string& source) {
  return Parser(json_text, source).run();
}

}  // namespace qcoder::tok
