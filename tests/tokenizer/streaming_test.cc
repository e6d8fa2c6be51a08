// StreamingDetokenizer: text as soon as it is complete UTF-8, the same text as decode() in the
// end, no U+FFFD for a character split across tokens, non-special added tokens kept.
#include <gtest/gtest.h>

#include <random>

#include "tokenizer/unicode.h"
#include "tokenizer_fixture.h"

namespace qcoder {
namespace {

using namespace testing_tok;

struct Streamed {
  std::vector<std::string> pieces;
  std::string text;
};

Streamed stream(const std::vector<int32_t>& ids, bool skip_special) {
  StreamingDetokenizer s(qwen(), skip_special);
  Streamed out;
  for (int32_t id : ids) {
    out.pieces.push_back(s.push(id));
    out.text += out.pieces.back();
    EXPECT_LE(s.pending_bytes(), 3u);
  }
  out.pieces.push_back(s.flush());
  out.text += out.pieces.back();
  EXPECT_EQ(s.pending_bytes(), 0u);
  return out;
}

TEST(Streaming, SplitEmojiIsHeldBackNotReplaced) {
  // 😀 is four byte tokens (tok_decode_public dpub-0004).
  const Streamed s = stream({9707, 172, 253, 246, 222, 0}, false);
  EXPECT_EQ(s.pieces, (std::vector<std::string>{"Hello", "", "", "", "😀", "!", ""}));
}

TEST(Streaming, UnfinishedCharacterBecomesReplacementAtFlush) {
  EXPECT_EQ(stream({9707, 11, 172, 253}, false).pieces.back(), "\uFFFD");  // dpub-0012
  // A special token after a cut character: the cut is final at once, as in decode().
  const Streamed s = stream({8519, 151645}, false);  // dpub-0013
  EXPECT_EQ(s.text, "\uFFFD<|im_end|>");
  EXPECT_EQ(s.pieces[1], "\uFFFD<|im_end|>");
  // With skip_special the special token is not there, so the bytes around it join.
  EXPECT_EQ(stream({172, 253, 151645, 246, 222}, true).text, "😀");
  EXPECT_EQ(qwen().decode(std::vector<int32_t>{172, 253, 151645, 246, 222}, true), "😀");
}

TEST(Streaming, NonSpecialAddedTokensSurviveSkipSpecial) {
  const std::vector<int32_t> ids = {151644, 151657, 151667, 151668, 151658, 151645, 151643};
  EXPECT_EQ(stream(ids, true).text, "<tool_call><think></think></tool_call>");
  EXPECT_EQ(stream(ids, false).text,
            "<|im_start|><tool_call><think></think></tool_call><|im_end|><|endoftext|>");
  EXPECT_EQ(stream({151700, 64}, false).text, "a");  // padding ids are skipped
}

TEST(Streaming, EqualsDecodeOnEveryPublicCase) {
  const Tokenizer& tok = qwen();
  for (const char* file : {"/tok_public.jsonl", "/tok_decode_public.jsonl"}) {
    for (const auto& c : read_jsonl(kFixtures + file)) {
      if (c.contains("category") && c["category"] == "large_mixed_1MB") continue;
      const auto ids = ids_of(c["ids"]);
      for (bool skip : {false, true}) {
        const Streamed s = stream(ids, skip);
        ASSERT_EQ(s.text, tok.decode(ids, skip)) << c["id"];
        for (const std::string& piece : s.pieces)
          ASSERT_EQ(tok::find_invalid_utf8(piece), std::string::npos);
      }
    }
  }
}

TEST(Streaming, EqualsDecodeOnRandomIds) {
  // Byte-level tokens (ids below 256 are single bytes) cut characters everywhere.
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::vector<int32_t> ids(1 + rng() % 12);
    for (int32_t& id : ids)
      id =
          rng() % 4 == 0 ? static_cast<int32_t>(rng() % 151700) : static_cast<int32_t>(rng() % 256);
    const bool skip = rng() % 2;
    ASSERT_EQ(stream(ids, skip).text, qwen().decode(ids, skip));
  }
}

}  // namespace
}  // namespace qcoder
