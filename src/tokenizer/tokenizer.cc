#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/nfc.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/string_id_map.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/unicode.h"
#include "tokenizer/word_cache.h"

namespace qcoder {

using namespace tok;

namespace {

// A tokenizer.json is ~7-12 MB; anything near this is not one.
constexpr size_t kMaxTokenizerJsonBytes = size_t{1} << 30;

enum class AddedTokens { kAll, kNonSpecial, kNone };

std::atomic<uint64_t> g_next_instance{1};

// The calling thread's word cache, emptied when it last served another tokenizer.
WordCache& thread_word_cache(uint64_t instance) {
  thread_local struct {
    uint64_t owner = 0;
    WordCache cache;
  } tls;
  if (tls.owner != instance) {
    tls.cache.clear();
    tls.owner = instance;
  }
  return tls.cache;
}

}  // namespace

struct Tokenizer::Impl {
  explicit Impl(TokenizerData d)
      : data(std::move(d)),
        byte_ids(make_byte_ids(data.vocab, data.vocab_map)),
        matcher(data.added_tokens),
        bpe(data.merges, byte_ids) {
    // Id tables cover the vocabulary and the added tokens (whose ids may extend it).
    int32_t max_id = static_cast<int32_t>(data.vocab.size()) - 1;
    for (const AddedTokenDef& t : data.added_tokens) max_id = std::max(max_id, t.id);
    entries.assign(static_cast<size_t>(max_id) + 1, Entry{});
    for (size_t id = 0; id < data.vocab.size(); ++id)
      set_entry(static_cast<int32_t>(id), data.vocab[id], 0);
    for (const AddedTokenDef& t : data.added_tokens)
      set_entry(t.id, t.content, static_cast<uint8_t>(kAdded | (t.special ? kSpecial : 0)));
    real_tokens = data.vocab.size();
    for (const AddedTokenDef& t : data.added_tokens)
      if (static_cast<size_t>(t.id) >= data.vocab.size()) ++real_tokens;
    std::vector<MergeDef>().swap(data.merges);  // the BPE table has them now
  }

  // The parser checked that every byte has its token.
  static std::array<int32_t, 256> make_byte_ids(const std::vector<std::string>& vocab,
                                                const StringIdMap& map) {
    std::array<int32_t, 256> ids{};
    for (int b = 0; b < 256; ++b)
      ids[b] = *map.find(bytes_to_token(std::string(1, static_cast<char>(b))), vocab);
    return ids;
  }

  void set_entry(int32_t id, const std::string& text, uint8_t flags) {
    // What the ByteLevel decoder turns this token into (added tokens included, as it does).
    const std::string bytes = token_to_bytes(text);
    Entry& e = entries[id];
    e.bytes_off = static_cast<uint32_t>(decoded.size());
    e.bytes_len = static_cast<uint32_t>(bytes.size());
    e.flags = static_cast<uint8_t>(flags | kPresent);
    decoded += bytes;
    if (flags & kAdded) added_text[id] = text;
  }

  void encode(std::string_view text, AddedTokens mode, std::vector<int32_t>& out) const {
    if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
      throw Error("tokenizer: the text is not valid UTF-8 (byte " + std::to_string(bad) + " of " +
                  std::to_string(text.size()) + ")");
    out.reserve(out.size() + text.size() / 3 + 8);
    WordCache& cache = thread_word_cache(instance);
    size_t piece_start = 0, search = 0;
    if (mode != AddedTokens::kNone) {
      while (auto m = matcher.find(text, search)) {
        search = m->end;
        if (m->special && mode == AddedTokens::kNonSpecial) continue;  // stays text
        encode_piece(text.substr(piece_start, m->begin - piece_start), out, cache);
        out.push_back(m->id);
        piece_start = m->end;
      }
    }
    encode_piece(text.substr(piece_start), out, cache);
  }

  void encode_piece(std::string_view piece, std::vector<int32_t>& out, WordCache& cache) const {
    if (piece.empty()) return;
    std::string normalized;
    if (data.nfc && nfc_normalize(piece, normalized)) piece = normalized;
    pretokenize(piece, [&](std::string_view word) { encode_word(word, out, cache); });
  }

  void encode_word(std::string_view word, std::vector<int32_t>& out, WordCache& cache) const {
    if (data.ignore_merges) {
      if (const auto id = data.vocab_map.find(bytes_to_token(word), data.vocab)) {
        out.push_back(*id);
        return;
      }
    }
    if (word.size() == 1 || word.size() > WordCache::kMaxWordBytes) {
      bpe.encode_word(word, out);
      return;
    }
    const uint64_t h = hash_bytes(word);
    size_t n;
    if (const int32_t* hit = cache.find(word, h, &n)) {
      out.insert(out.end(), hit, hit + n);
      return;
    }
    const size_t before = out.size();
    bpe.encode_word(word, out);
    cache.insert(word, h, out.data() + before, out.size() - before);
  }

  enum : uint8_t { kPresent = 1, kAdded = 2, kSpecial = 4 };
  struct Entry {
    uint32_t bytes_off = 0, bytes_len = 0;
    uint8_t flags = 0;
  };
  const Entry* entry(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= entries.size() || !(entries[id].flags & kPresent))
      return nullptr;
    return &entries[id];
  }

  TokenizerData data;
  std::array<int32_t, 256> byte_ids;
  AddedTokenMatcher matcher;
  BpeModel bpe;
  std::vector<Entry> entries;  // by id
  std::string decoded;         // every token's decoded bytes, back to back
  std::unordered_map<int32_t, std::string> added_text;
  size_t real_tokens = 0;
  uint64_t instance = g_next_instance.fetch_add(1);
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_json(std::string_view json, const std::string& source) {
  return std::unique_ptr<Tokenizer>(
      new Tokenizer(std::make_unique<Impl>(parse_tokenizer_json(json, source))));
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "tokenizer.json").string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(model_dir + ": no tokenizer.json in the folder");
  const MappedFile file(path);
  if (file.size() > kMaxTokenizerJsonBytes) throw Error(path + ": too large for a tokenizer.json");
  return from_json(std::string_view(reinterpret_cast<const char*>(file.data()), file.size()), path);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> out;
  impl_->encode(text, parse_special ? AddedTokens::kAll : AddedTokens::kNonSpecial, out);
  return out;
}

std::vector<int32_t> Tokenizer::encode_ordinary(std::string_view text) const {
  std::vector<int32_t> out;
  impl_->encode(text, AddedTokens::kNone, out);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    const Impl::Entry* e = impl_->entry(id);
    if (!e || (skip_special && (e->flags & Impl::kSpecial))) continue;
    bytes.append(impl_->decoded, e->bytes_off, e->bytes_len);
  }
  if (find_invalid_utf8(bytes) == std::string::npos) return bytes;
  std::string out;
  append_utf8_lossy(out, bytes);
  return out;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  for (const AddedTokenDef& t : impl_->data.added_tokens)
    if (t.content == token) return t.id;
  return impl_->data.vocab_map.find(token, impl_->data.vocab);
}

std::optional<std::string_view> Tokenizer::id_to_token(int32_t id) const {
  const Impl::Entry* e = impl_->entry(id);
  if (!e) return std::nullopt;
  if (e->flags & Impl::kAdded) return std::string_view(impl_->added_text.at(id));
  return std::string_view(impl_->data.vocab[id]);
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  const Impl::Entry* e = impl_->entry(id);
  if (!e) return {};
  return std::string_view(impl_->decoded).substr(e->bytes_off, e->bytes_len);
}

bool Tokenizer::has_token(int32_t id) const { return impl_->entry(id) != nullptr; }

bool Tokenizer::is_special(int32_t id) const {
  const Impl::Entry* e = impl_->entry(id);
  return e && (e->flags & Impl::kSpecial);
}

bool Tokenizer::is_added(int32_t id) const {
  const Impl::Entry* e = impl_->entry(id);
  return e && (e->flags & Impl::kAdded);
}

size_t Tokenizer::vocab_size() const { return impl_->real_tokens; }

size_t Tokenizer::memory_bytes() const {
  const Impl& m = *impl_;
  size_t total = m.decoded.capacity() + m.entries.capacity() * sizeof(Impl::Entry) +
                 m.bpe.memory_bytes() + m.data.vocab.capacity() * sizeof(std::string) +
                 m.data.merges.capacity() * sizeof(MergeDef);
  for (const std::string& s : m.data.vocab)
    if (s.capacity() > 15) total += s.capacity() + 1;
  return total + m.data.vocab_map.memory_bytes();
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tok, bool skip_special)
    : tok_(&tok), skip_special_(skip_special) {}

std::string StreamingDetokenizer::push(int32_t id) {
  if (!tok_->has_token(id) || (skip_special_ && tok_->is_special(id))) return {};
  pending_ += tok_->token_bytes(id);
  // Everything but an unfinished character at the end is final: the bytes after it cannot
  // change how the earlier ones decode.
  const size_t ready = pending_.size() - incomplete_utf8_tail(pending_);
  std::string out;
  append_utf8_lossy(out, std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string StreamingDetokenizer::flush() {
  std::string out;
  append_utf8_lossy(out, pending_);
  pending_.clear();
  return out;
}

}  // namespace qcoder
