// The live differential test: every case tests/reference/tokenizer_live_refs.py generated with
// Hugging Face tokenizers 0.23.2 (in the reference venv, at test time) must come out identical
// here: ids (three added-token modes), decodes, the pre-tokenizer's pieces, NFC, and the
// tokenizer.json variants. The case file's path is QCODER_TOKENIZER_LIVE_DIR/cases.jsonl;
// ctest runs the generator first (tests/tokenizer/CMakeLists.txt).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "tokenizer/byte_level.h"
#include "tokenizer/nfc.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer_fixture.h"

namespace qcoder {
namespace {

using namespace testing_tok;
using nlohmann::json;

// Printable form of a failing text: JSON-escaped, cut to a readable length.
std::string show(const std::string& text) {
  const std::string j = json(text).dump(-1, ' ', true, json::error_handler_t::replace);
  return j.size() > 300 ? j.substr(0, 300) + "...(" + std::to_string(text.size()) + " bytes)" : j;
}

std::string show(const std::vector<int32_t>& ids) {
  const std::string j = json(ids).dump();
  return j.size() > 300 ? j.substr(0, 300) + "..." : j;
}

class Mismatches {
 public:
  void check(bool ok, const std::string& kind, const std::string& what) {
    ++checked_[kind];
    if (ok) return;
    if (++failed_[kind] <= 5) ADD_FAILURE() << kind << ": " << what;
  }
  void report() const {
    std::string summary;
    for (const auto& [kind, n] : checked_)
      summary += kind + " " + std::to_string(n) + " checked, " +
                 std::to_string(failed_.count(kind) ? failed_.at(kind) : 0) + " mismatches; ";
    std::cout << "live diff: " << summary << std::endl;
    ::testing::Test::RecordProperty("summary", summary);
  }
  size_t checked(const std::string& kind) const {
    return checked_.count(kind) ? checked_.at(kind) : 0;
  }

 private:
  std::map<std::string, size_t> checked_, failed_;
};

TEST(LiveDiff, MatchesHuggingFaceTokenizers) {
  if (const char* skip = std::getenv("QCODER_SKIP_PEER_TESTS"); skip && std::string(skip) == "1")
    GTEST_SKIP() << "QCODER_SKIP_PEER_TESTS=1: no live references from Hugging Face tokenizers";
  const char* dir = std::getenv("QCODER_TOKENIZER_LIVE_DIR");
  if (!dir || !*dir) GTEST_SKIP() << "QCODER_TOKENIZER_LIVE_DIR is not set (run through ctest)";
  const std::string live = dir;
  const auto rows = read_jsonl(live + "/cases.jsonl");
  ASSERT_FALSE(rows.empty()) << live << "/cases.jsonl is empty";
  const json& meta = rows[0];
  ASSERT_EQ(meta["kind"], "meta");
  ASSERT_EQ(meta["tokenizers"], "0.23.2");

  const Tokenizer& tok = qwen();
  std::map<std::string, std::unique_ptr<Tokenizer>> variants;
  for (const auto& name : meta["variants"]) {
    const std::string n = name.get<std::string>();
    variants[n] = Tokenizer::load(live + "/" + n);
  }

  Mismatches m;
  for (size_t r = 1; r < rows.size(); ++r) {
    const json& c = rows[r];
    const std::string kind = c["kind"];
    if (kind == "encode") {
      const std::string text = c["text"];
      const auto want = ids_of(c["ids"]);
      const auto got = tok.encode(text);
      m.check(got == want, "encode",
              show(text) + "\n  hf:     " + show(want) + "\n  qcoder: " + show(got));
      const auto split = c.contains("ids_split_special") ? ids_of(c["ids_split_special"]) : want;
      const auto got_split = tok.encode(text, false);
      m.check(got_split == split, "encode_split_special",
              show(text) + "\n  hf: " + show(split) + "\n  qcoder: " + show(got_split));
      const auto plain = c.contains("ids_plain") ? ids_of(c["ids_plain"]) : want;
      const auto got_plain = tok.encode_ordinary(text);
      m.check(got_plain == plain, "encode_plain",
              show(text) + "\n  hf: " + show(plain) + "\n  qcoder: " + show(got_plain));
      const std::string decoded = c["decoded"];
      m.check(tok.decode(want) == decoded, "decode", show(want) + " -> " + show(decoded));
      m.check(tok.decode(want, true) == c.value("decoded_skip", decoded), "decode_skip_special",
              show(want));
    } else if (kind == "pre") {
      const std::string text = c["text"];
      std::vector<std::string> pieces;
      tok::pretokenize(text, [&](std::string_view p) { pieces.push_back(tok::bytes_to_token(p)); });
      const auto want = c["pre"].get<std::vector<std::string>>();
      std::string detail = show(text);
      if (pieces != want) {
        for (size_t i = 0; i < std::min(pieces.size(), want.size()); ++i)
          if (pieces[i] != want[i]) {
            detail += "\n  first difference at piece " + std::to_string(i) + ": hf " +
                      show(want[i]) + " qcoder " + show(pieces[i]);
            break;
          }
      }
      m.check(pieces == want, "pretokenize", detail);
    } else if (kind == "nfc") {
      const std::string text = c["text"], want = c["nfc"];
      std::string out;
      const std::string got = tok::nfc_normalize(text, out) ? out : text;
      std::string detail = show(text);
      if (got != want) {
        size_t i = 0;
        while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
        detail += "\n  differs at byte " + std::to_string(i) + ": hf " +
                  show(want.substr(i > 8 ? i - 8 : 0, 24)) + " qcoder " +
                  show(got.substr(i > 8 ? i - 8 : 0, 24));
      }
      m.check(got == want, "nfc", detail);
    } else if (kind == "decode") {
      const auto ids = ids_of(c["ids"]);
      m.check(tok.decode(ids) == c["decoded"].get<std::string>(), "decode_ids", show(ids));
      m.check(tok.decode(ids, true) == c["decoded_skip"].get<std::string>(),
              "decode_ids_skip_special", show(ids));
    } else if (kind == "variant") {
      const std::string name = c["variant"], text = c["text"];
      const Tokenizer& v = *variants.at(name);
      const auto want = ids_of(c["ids"]);
      const auto got = v.encode(text);
      m.check(got == want, "variant_" + name,
              show(text) + "\n  hf: " + show(want) + "\n  qcoder: " + show(got));
      m.check(v.decode(want) == c["decoded"].get<std::string>(), "variant_decode_" + name,
              show(want));
      m.check(v.decode(want, true) == c["decoded_skip"].get<std::string>(),
              "variant_decode_" + name, show(want));
    }
  }
  m.report();
  // A generator that wrote almost nothing must not pass.
  EXPECT_GE(m.checked("encode"), 4000u);
  EXPECT_GE(m.checked("pretokenize"), 2000u);
  EXPECT_GE(m.checked("nfc"), 1000u);
  EXPECT_GE(m.checked("decode_ids"), 1000u);
  for (const auto& [name, v] : variants) EXPECT_GE(m.checked("variant_" + name), 300u) << name;
}

}  // namespace
}  // namespace qcoder
