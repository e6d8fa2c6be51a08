// Inputs a server or a fuzzer can send: NUL bytes, invalid UTF-8, huge and pathological texts.
// Each has defined behaviour: ids (identical to Hugging Face's) or a qcoder::Error.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/error.h"
#include "tokenizer_fixture.h"

#if defined(__SANITIZE_ADDRESS__)
#define QCODER_TOK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QCODER_TOK_SANITIZED 1
#endif
#endif

namespace qcoder {
namespace {

using namespace testing_tok;

TEST(BadInput, NulBytesAreText) {
  const std::string text("a\0b\0\0 \0", 7);
  const auto ids = qwen().encode(text);
  EXPECT_FALSE(ids.empty());
  EXPECT_EQ(qwen().decode(ids), text);
  EXPECT_EQ(qwen().encode(std::string(1, '\0')),
            (std::vector<int32_t>{188}));  // 'Ā', the byte-level 0x00
}

TEST(BadInput, InvalidUtf8IsAnErrorWithTheOffset) {
  for (const std::string& bad :
       {std::string("ok\xff"), std::string("\xC0\x80"), std::string("ab\xED\xA0\x80"),
        std::string("\xF0\x9F\x98"), std::string("<|im_end|>\x80")}) {
    for (int mode = 0; mode < 3; ++mode) {
      try {
        if (mode == 0) qwen().encode(bad);
        if (mode == 1) qwen().encode(bad, false);
        if (mode == 2) qwen().encode_ordinary(bad);
        ADD_FAILURE() << "no error for " << ::testing::PrintToString(bad);
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("not valid UTF-8 (byte "), std::string::npos)
            << e.what();
      }
    }
  }
}

TEST(BadInput, EmptyAndAddedTokenOnly) {
  EXPECT_TRUE(qwen().encode("").empty());
  EXPECT_EQ(qwen().decode(std::vector<int32_t>{}), "");
  EXPECT_EQ(qwen().encode("<|im_end|><|im_end|>"), (std::vector<int32_t>{151645, 151645}));
}

TEST(BadInput, PathologicalRunsStayLinear) {
  // One pre-token of 200k letters (the heap path of BPE), long white-space and symbol runs.
  const std::vector<std::string> texts = {std::string(200000, 'a'), std::string(200000, ' ') + "x",
                                          std::string(100000, '!'), std::string(50000, '\n'), [] {
                                            std::string s;
                                            for (int i = 0; i < 50000; ++i) s += "'s";
                                            return s;
                                          }()};
  for (const std::string& t : texts) {
    const auto start = std::chrono::steady_clock::now();
    const auto ids = qwen().encode(t);
    EXPECT_EQ(qwen().decode(ids), t);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
              20.0);
  }
}

TEST(BadInput, HundredMegabytes) {
#ifdef QCODER_TOK_SANITIZED
  const size_t target = size_t{16} << 20;  // sanitizers run ~10x slower; the code path is the same
#else
  const size_t target = size_t{100} << 20;
#endif
  // Real mixed text (the 1 MiB reference case: code, prose, CJK, emoji), repeated.
  std::string chunk;
  for (const auto& c : read_jsonl(kFixtures + "/tok_public.jsonl"))
    if (c["category"] == "large_mixed_1MB") chunk = c["text"].get<std::string>() + "\n";
  ASSERT_FALSE(chunk.empty());
  std::string big;
  big.reserve(target + chunk.size());
  while (big.size() < target) big += chunk;
  const auto start = std::chrono::steady_clock::now();
  const auto ids = qwen().encode(big);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(ids.size(), big.size() / 5);
  EXPECT_EQ(qwen().decode(ids), big);  // the chunk is NFC already
  RecordProperty("megabytes_per_second", static_cast<int>(big.size() / 1e6 / seconds));
}

TEST(Concurrency, ThreadsEncodeTheSameAsOneThread) {
  // The server encodes on many threads with one Tokenizer: each thread has its own word cache.
  std::vector<std::string> texts;
  for (const auto& c : read_jsonl(kFixtures + "/tok_public.jsonl"))
    if (c["text"].get<std::string>().size() < 20000) texts.push_back(c["text"]);
  std::vector<std::vector<int32_t>> want;
  for (const auto& t : texts) want.push_back(qwen().encode(t));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int round = 0; round < 3; ++round)
        for (size_t i = 0; i < texts.size(); ++i)
          mismatches[k] += qwen().encode(texts[(i * (k + 1)) % texts.size()]) !=
                           want[(i * (k + 1)) % texts.size()];
    });
  for (auto& t : threads) t.join();
  for (int k = 0; k < 4; ++k) EXPECT_EQ(mismatches[k], 0) << "thread " << k;
}

}  // namespace
}  // namespace qcoder
