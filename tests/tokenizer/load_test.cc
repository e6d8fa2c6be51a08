// Loading tokenizer.json: both merge forms, the fields that change results, and clear errors
// (naming the file and field) for every way the file can be missing, corrupt or unsupported.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "tokenizer_fixture.h"

namespace qcoder {
namespace {

using namespace testing_tok;
using nlohmann::json;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string load_error(const std::string& text) {
  return error_of([&] { Tokenizer::from_json(text, "t.json"); });
}

json tiny() {
  return tiny_tokenizer_json({{"h", "e"}, {"l", "l"}, {"he", "ll"}, {" ", "w"}},
                             {{"<|end|>", true}, {"<x>", false}});
}

TEST(Load, QwenVocabulary) {
  const Tokenizer& tok = qwen();
  EXPECT_EQ(tok.vocab_size(), 151669u);
  EXPECT_EQ(tok.token_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok.token_id("<|endoftext|>"), 151643);
  EXPECT_EQ(tok.token_id("<|fim_prefix|>"), 151659);
  EXPECT_EQ(tok.token_id("<tool_call>"), 151657);
  EXPECT_EQ(tok.token_id("Ġworld"), 1879);
  EXPECT_EQ(tok.token_id("no such token"), std::nullopt);
  EXPECT_TRUE(tok.is_special(151644));
  EXPECT_FALSE(tok.is_special(151657));  // <tool_call>
  EXPECT_TRUE(tok.is_added(151657));
  EXPECT_FALSE(tok.is_special(9707));
  EXPECT_EQ(tok.id_to_token(1879), "Ġworld");
  EXPECT_EQ(tok.id_to_token(151668), "</think>");
  EXPECT_EQ(tok.token_bytes(1879), " world");
  EXPECT_FALSE(tok.has_token(151669));  // padding rows of the embedding
  EXPECT_FALSE(tok.has_token(-1));
  EXPECT_EQ(tok.id_to_token(151700), std::nullopt);
  for (int32_t special = 151643; special <= 151656; ++special)
    EXPECT_TRUE(tok.is_special(special)) << special;
  for (int32_t plain = 151657; plain <= 151668; ++plain)
    EXPECT_FALSE(tok.is_special(plain)) << plain;
}

TEST(Load, BothMergeFormsGiveTheSameTokenizer) {
  const std::string text = "hello world, hell, <x> <|end|>hehe";
  const auto pairs = Tokenizer::from_json(tiny().dump());
  const auto legacy =
      Tokenizer::from_json(tiny_tokenizer_json({{"h", "e"}, {"l", "l"}, {"he", "ll"}, {" ", "w"}},
                                               {{"<|end|>", true}, {"<x>", false}}, true)
                               .dump());
  EXPECT_EQ(pairs->encode(text), legacy->encode(text));
  EXPECT_EQ(pairs->encode("hello"), (std::vector<int32_t>{258, 'o'}));
  EXPECT_EQ(pairs->encode("<|end|>"), (std::vector<int32_t>{260}));
  EXPECT_EQ(pairs->vocab_size(), 262u);
}

TEST(Load, LaterDuplicateMergeKeepsItsRank) {
  // tokenizers fills its merge map in rank order, so a pair listed twice keeps the later rank:
  // (l, l) then ranks after (e, l), and "ell" merges e+l first.
  const auto once = Tokenizer::from_json(tiny_tokenizer_json({{"l", "l"}, {"e", "l"}}, {}).dump());
  const auto twice =
      Tokenizer::from_json(tiny_tokenizer_json({{"l", "l"}, {"e", "l"}, {"l", "l"}}, {}).dump());
  EXPECT_EQ(once->encode("ell"), (std::vector<int32_t>{'e', 256}));
  EXPECT_EQ(twice->encode("ell"), (std::vector<int32_t>{257, 'l'}));
}

TEST(Load, MissingFolderOrFile) {
  EXPECT_NE(error_of([] { Tokenizer::load("/nonexistent-dir"); }).find("no tokenizer.json"),
            std::string::npos);
  TempDir tmp;
  std::ofstream(tmp.path() / "tokenizer.json") << "";
  EXPECT_NE(error_of([&] { Tokenizer::load(tmp.path().string()); }).find("tokenizer.json: byte 0"),
            std::string::npos);
  std::filesystem::create_directory(tmp.path() / "d");
  std::filesystem::create_directory(tmp.path() / "d" / "tokenizer.json");
  EXPECT_NE(
      error_of([&] { Tokenizer::load((tmp.path() / "d").string()); }).find("no tokenizer.json"),
      std::string::npos);
}

TEST(Load, CorruptJson) {
  const std::string good = tiny().dump();
  // Cut anywhere: an error, never a crash or a partial tokenizer.
  for (size_t cut = 0; cut < good.size(); cut += 97)
    EXPECT_NE(load_error(good.substr(0, cut)), "(no error)") << cut;
  EXPECT_NE(load_error(good + "x").find("after the top-level object"), std::string::npos);
  EXPECT_NE(load_error("[]").find("expected '{'"), std::string::npos);
  EXPECT_NE(load_error("{\"model\": {\"vocab\": {\"a\": 1.5}}}").find("integer"),
            std::string::npos);
  EXPECT_NE(load_error("{\"model\": {\"vocab\": {\"\xff\": 0}}}").find("UTF-8"), std::string::npos);
  EXPECT_NE(load_error("{\"model\": {\"vocab\": {\"\\ud800\": 0}}}").find("surrogate"),
            std::string::npos);
  EXPECT_NE(load_error(std::string(100000, '[')).find("byte"), std::string::npos);
  EXPECT_NE(load_error("{\"x\": " + std::string(100000, '[')).find("nesting too deep"),
            std::string::npos);
  EXPECT_NE(load_error("{\"model\": {}}").find("model.vocab is missing"), std::string::npos);
  EXPECT_NE(load_error("{\"version\": 01}").find("leading zero"), std::string::npos);
  EXPECT_NE(load_error("{\"version\": 1.}").find("bad number"), std::string::npos);
  EXPECT_NE(load_error("{\"version\": 1-2}").find("expected ','"), std::string::npos);
  EXPECT_NE(load_error("{\"version\": tru}").find("unexpected character"), std::string::npos);
  EXPECT_NE(load_error("{\"a\": 1, \"a\": 2}").find("duplicate key \"a\""), std::string::npos);
  EXPECT_NE(load_error("{}").find("model is missing"), std::string::npos);
}

TEST(Load, BadFieldsAreNamed) {
  struct Case {
    std::function<void(json&)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["model"]["type"] = "WordPiece"; }, "model.type"},
      {[](json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout"},
      {[](json& j) { j["model"]["continuing_subword_prefix"] = "##"; },
       "model.continuing_subword_prefix"},
      {[](json& j) {
         j["model"]["merges"].push_back(json::array({"zzz", "q"}));
       },
       "model.merges[4]"},
      {[](json& j) { j["model"]["merges"].push_back("h  e"); }, "model.merges[4]"},
      {[](json& j) { j["model"]["merges"].push_back("he"); }, "not two tokens"},
      {[](json& j) { j["model"]["merges"].push_back(7); }, "a merge must be"},
      {[](json& j) { j["model"]["vocab"]["extra"] = 5; }, "is used twice"},
      {[](json& j) { j["model"]["vocab"]["extra"] = 999; }, "ids are not 0.."},
      {[](json& j) { j["model"]["vocab"].erase("a"); }, "model.vocab"},
      {[](json& j) { j["model"].erase("merges"); }, "model.merges is missing"},
      {[](json& j) {
         j["normalizer"] = {{"type", "NFKC"}};
       },
       "normalizer"},
      {[](json& j) {
         j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
       },
       "pre_tokenizer"},
      {[](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+"; },
       "pre_tokenizer"},
      {[](json& j) { j["decoder"] = nullptr; }, "decoder"},
      {[](json& j) { j["added_tokens"][0]["lstrip"] = true; }, "added_tokens[0]"},
      {[](json& j) { j["added_tokens"][1]["normalized"] = true; }, "added_tokens[1]"},
      {[](json& j) { j["added_tokens"][1]["id"] = 300; }, "tokenizers would give it 261"},
      {[](json& j) { j["added_tokens"][1]["content"] = ""; }, "empty content"},
      {[](json& j) { j["added_tokens"][1]["content"] = "<|end|>"; }, "repeats"},
      {[](json& j) {
         j["added_tokens"] = {{"id", 1}};
       },
       "added_tokens"},
  };
  for (const Case& c : cases) {
    json j = tiny();
    c.edit(j);
    const std::string err = load_error(j.dump());
    EXPECT_NE(err.find("t.json"), std::string::npos) << err;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.expect << ": " << err;
  }
}

TEST(Load, AcceptedVariations) {
  json j = tiny();
  j["normalizer"] = nullptr;  // no normalizer: NFC is not applied
  EXPECT_EQ(Tokenizer::from_json(j.dump())->encode("e\u0301").size(), 3u);
  EXPECT_EQ(Tokenizer::from_json(tiny().dump())->encode("e\u0301").size(),
            2u);  // é is two byte tokens
  j = tiny();
  j["post_processor"] = nullptr;
  j["truncation"] = nullptr;
  j["unknown_future_field"] = {{"x", 1}};
  j["model"]["byte_fallback"] = false;
  EXPECT_NO_THROW(Tokenizer::from_json(j.dump()));
  // BPE never reaches "hel" (h+e merges first and he+l is no merge); with ignore_merges a word
  // that is a vocabulary token is taken whole.
  j = tiny_tokenizer_json({{"h", "e"}, {"e", "l"}, {"h", "el"}}, {});
  EXPECT_EQ(Tokenizer::from_json(j.dump())->encode("hel"), (std::vector<int32_t>{256, 'l'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(Tokenizer::from_json(j.dump())->encode("hel"), (std::vector<int32_t>{258}));
}

TEST(Load, WordCacheIsPerTokenizer) {
  // Two tokenizers that split the same word differently, used alternately on one thread (and a
  // new one possibly at a freed one's address): each gives its own ids.
  for (int round = 0; round < 3; ++round) {
    const auto a = Tokenizer::from_json(tiny_tokenizer_json({{"a", "b"}}, {}).dump());
    const auto b = Tokenizer::from_json(tiny_tokenizer_json({{"b", "c"}}, {}).dump());
    EXPECT_EQ(a->encode("abc"), (std::vector<int32_t>{256, 'c'}));
    EXPECT_EQ(b->encode("abc"), (std::vector<int32_t>{'a', 256}));
    EXPECT_EQ(a->encode("abc"), (std::vector<int32_t>{256, 'c'}));
  }
}

}  // namespace
}  // namespace qcoder
