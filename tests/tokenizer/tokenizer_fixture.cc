#include "tokenizer_fixture.h"

#include <filesystem>

#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer_json.h"

namespace qcoder::testing_tok {

nlohmann::json tiny_tokenizer_json(const std::vector<std::pair<std::string, std::string>>& merges,
                                   const std::vector<TinyAdded>& added, bool legacy_merges) {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b)
    vocab[tok::bytes_to_token(std::string(1, static_cast<char>(b)))] = b;
  nlohmann::json merge_list = nlohmann::json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    const std::string ta = tok::bytes_to_token(a), tb = tok::bytes_to_token(b);
    if (!vocab.contains(ta + tb)) vocab[ta + tb] = next++;
    merge_list.push_back(legacy_merges ? nlohmann::json(ta + " " + tb)
                                       : nlohmann::json::array({ta, tb}));
  }
  nlohmann::json added_list = nlohmann::json::array();
  for (const TinyAdded& t : added)
    added_list.push_back({{"id", next++},
                          {"content", t.content},
                          {"single_word", false},
                          {"lstrip", false},
                          {"rstrip", false},
                          {"normalized", false},
                          {"special", t.special}});
  return {{"version", "1.0"},
          {"added_tokens", added_list},
          {"normalizer", {{"type", "NFC"}}},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"},
               {"pattern", {{"Regex", tok::kQwenSplitRegex}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"},
               {"add_prefix_space", false},
               {"trim_offsets", false},
               {"use_regex", false}}}}}},
          {"post_processor",
           {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", false},
            {"use_regex", false}}},
          {"decoder",
           {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", false},
            {"use_regex", false}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", ""},
            {"end_of_word_suffix", ""},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", nlohmann::json::parse(vocab.dump())},
            {"merges", merge_list}}}};
}

void write_tokenizer(const std::string& dir, const nlohmann::json& j) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json", std::ios::binary) << j.dump();
}

}  // namespace qcoder::testing_tok
