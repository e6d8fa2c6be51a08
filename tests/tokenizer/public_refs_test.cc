// 100% of the public references (../shared/data/tok_*.jsonl, made with Hugging Face tokenizers
// 0.23.2): ids with and without special-token parsing, with no added tokens at all, the
// byte-level tokens, the pre-tokenizer output, and both decodes.
#include <gtest/gtest.h>

#include "tokenizer/byte_level.h"
#include "tokenizer/nfc.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer_fixture.h"

namespace qcoder {
namespace {

using namespace testing_tok;

TEST(PublicRefs, EncodeCasesAllFields) {
  const Tokenizer& tok = qwen();
  const auto cases = read_jsonl(kFixtures + "/tok_public.jsonl");
  ASSERT_EQ(cases.size(), 230u);
  int checked = 0, split_special = 0, plain = 0, skip = 0, tokens = 0, pre = 0;
  for (const auto& c : cases) {
    const std::string id = c["id"], text = c["text"];
    const auto want = ids_of(c["ids"]);
    const auto got = tok.encode(text);
    ASSERT_EQ(got, want) << id << " (" << c["category"] << ")";
    EXPECT_EQ(tok.encode(text, false),
              c.contains("ids_split_special") ? ids_of(c["ids_split_special"]) : want)
        << id;
    EXPECT_EQ(tok.encode_ordinary(text), c.contains("ids_plain") ? ids_of(c["ids_plain"]) : want)
        << id;
    EXPECT_EQ(tok.decode(got), c["decoded"].get<std::string>()) << id;
    EXPECT_EQ(tok.decode(got, true),
              c.value("decoded_skip_special", c["decoded"].get<std::string>()))
        << id;
    EXPECT_EQ(c["roundtrip"].get<bool>(), tok.decode(got) == text) << id;
    split_special += c.contains("ids_split_special");
    plain += c.contains("ids_plain");
    skip += c.contains("decoded_skip_special");
    if (c.contains("tokens")) {
      std::vector<std::string> names;
      for (int32_t t : got) names.emplace_back(*tok.id_to_token(t));
      EXPECT_EQ(names, c["tokens"].get<std::vector<std::string>>()) << id;
      ++tokens;
    }
    if (c.contains("pre")) {
      std::string normalized;
      const std::string_view nfc =
          tok::nfc_normalize(text, normalized) ? std::string_view(normalized) : text;
      std::vector<std::string> pieces;
      tok::pretokenize(nfc, [&](std::string_view p) { pieces.push_back(tok::bytes_to_token(p)); });
      EXPECT_EQ(pieces, c["pre"].get<std::vector<std::string>>()) << id;
      ++pre;
    }
    ++checked;
  }
  // The counts tok_refs_meta.json gives, so that a truncated fixture cannot pass silently.
  EXPECT_EQ(checked, 230);
  EXPECT_EQ(split_special, 13);
  EXPECT_EQ(plain, 24);
  EXPECT_GT(skip, 0);
  EXPECT_GT(tokens, 150);
  EXPECT_GT(pre, 150);
  RecordProperty("cases", checked);
}

TEST(PublicRefs, DecodeCases) {
  const Tokenizer& tok = qwen();
  const auto cases = read_jsonl(kFixtures + "/tok_decode_public.jsonl");
  ASSERT_EQ(cases.size(), 33u);
  for (const auto& c : cases) {
    const auto ids = ids_of(c["ids"]);
    EXPECT_EQ(tok.decode(ids), c["decoded"].get<std::string>()) << c["id"] << " " << c["name"];
    EXPECT_EQ(tok.decode(ids, true), c["decoded_skip_special"].get<std::string>()) << c["id"];
  }
}

TEST(PublicRefs, OneMebibyteCase) {
  const auto cases = read_jsonl(kFixtures + "/tok_public.jsonl");
  for (const auto& c : cases) {
    if (c["category"] != "large_mixed_1MB") continue;
    EXPECT_EQ(c["text"].get<std::string>().size(), 1048576u);
    EXPECT_EQ(qwen().encode(c["text"].get<std::string>()).size(), 345598u);
    return;
  }
  FAIL() << "no large_mixed_1MB case";
}

}  // namespace
}  // namespace qcoder
