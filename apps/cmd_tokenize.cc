// qcoder tokenize / detokenize: the tokenizer alone, on a model folder or a folder that holds
// only tokenizer files. Output is exactly what Hugging Face tokenizers gives (see
// docs/TOKENIZER.md): tokenize prints a bare JSON array, detokenize the raw UTF-8 text.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "flags.h"
#include "tokenizer/tokenizer.h"

namespace qcoder::cli {
namespace {

std::string read_raw_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("--file " + path + ": cannot read: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("--file " + path + ": read error");
  return ss.str();
}

// Every Qwen3 and Qwen3-Coder model (30B-A3B, 480B-A35B) has 151,936 embedding rows for this
// tokenizer's 151,669 tokens.
constexpr size_t kQwen3Tokens = 151669;
constexpr int64_t kQwen3EmbeddingRows = 151936;

// The model's embedding rows: config.json's vocab_size when the folder has one; for a folder
// with only tokenizer files, 151,936 when it is the Qwen3 tokenizer, else the tokenizer's own
// size. Ids from the tokenizer's size up to this bound are padding rows that decode skips, as
// Hugging Face does ([151700, 64] -> "a"); ids at or above it are errors.
int64_t id_bound(const std::string& model_dir, const Tokenizer& tok, std::string* source) {
  const auto config = std::filesystem::path(model_dir) / "config.json";
  if (std::filesystem::exists(config)) {
    std::ifstream in(config, std::ios::binary);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(config.string() + ": " + e.what());
    }
    if (j.is_object() && j.contains("vocab_size") && j["vocab_size"].is_number_integer()) {
      *source =
          "vocab_size " + std::to_string(j["vocab_size"].get<int64_t>()) + " from config.json";
      return j["vocab_size"].get<int64_t>();
    }
  }
  if (tok.vocab_size() == kQwen3Tokens && tok.token_id("<|im_end|>") == 151645) {
    *source = "151936 rows of the Qwen3 models; no config.json in the folder";
    return kQwen3EmbeddingRows;
  }
  *source =
      "the tokenizer's " + std::to_string(tok.vocab_size()) + " tokens; no config.json vocab_size";
  return static_cast<int64_t>(tok.vocab_size());
}

}  // namespace

int run_tokenize(int argc, char** argv) {
  std::string model_dir, text, file;
  bool no_special = false;
  int64_t threads = 0;
  FlagSet flags(
      "tokenize",
      "Prints the token ids of a text as a bare JSON array on one line, e.g. [9707,11,1879,0]:\n"
      "what Hugging Face tokenizers' encode gives (no special tokens added). Added tokens\n"
      "in the text (<|im_start|>, <tool_call>, ...) become their ids. Invalid UTF-8 is an\n"
      "error. Works on a folder that holds only tokenizer.json.");
  flags.add("-m,--model", &model_dir, "model or tokenizer folder (reads its tokenizer.json)", true);
  flags.add("--text", &text, "the text to tokenize");
  flags.add("--file", &file, "read the text from this file, as raw bytes (nothing stripped)");
  flags.add(
      "--no-special", &no_special,
      "special tokens in the text stay plain text (split_special_tokens); <tool_call>, <think> "
      "and the FIM tokens are still matched");
  flags.add("-t,--threads", &threads, "accepted for uniformity; tokenizing uses one thread");
  if (!flags.parse(argc, argv)) return 0;
  if (flags.given("--text") == flags.given("--file"))
    throw Error("give exactly one of --text and --file");
  if (flags.given("--file")) text = read_raw_file(file);

  const auto tok = Tokenizer::load(model_dir);
  const std::vector<int32_t> ids = tok->encode(text, !no_special);
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += "]\n";
  std::cout << out << std::flush;
  return 0;
}

int run_detokenize(int argc, char** argv) {
  std::string model_dir, ids_text;
  bool skip_special = false;
  int64_t threads = 0;
  FlagSet flags("detokenize",
                "Writes the text of token ids as raw UTF-8 with no trailing newline: what Hugging\n"
                "Face tokenizers' decode gives (ill-formed UTF-8 from a cut character becomes\n"
                "U+FFFD). Ids of the model's padding rows (from the tokenizer's size up to\n"
                "config.json's vocab_size; 151936 for the Qwen3 tokenizer in a folder without\n"
                "config.json) are skipped as Hugging Face does; larger ids are errors.");
  flags.add("-m,--model", &model_dir, "model or tokenizer folder (reads its tokenizer.json)", true);
  flags.add("--ids", &ids_text, "comma-separated token ids, e.g. 9707,11,1879,0", true);
  flags.add("--skip-special", &skip_special,
            "drop special tokens (<|im_start|>, <|im_end|>, ...); <tool_call>, <think> and the FIM "
            "tokens stay");
  flags.add("-t,--threads", &threads, "accepted for uniformity; decoding uses one thread");
  if (!flags.parse(argc, argv)) return 0;

  const auto tok = Tokenizer::load(model_dir);
  const bool blank = ids_text.find_first_not_of(" \t") == std::string::npos;
  const std::vector<int32_t> ids = blank ? std::vector<int32_t>{} : parse_id_list(ids_text);
  std::string bound_source;
  const int64_t bound = id_bound(model_dir, *tok, &bound_source);
  for (int32_t id : ids)
    if (id >= bound)
      throw Error("--ids: token id " + std::to_string(id) + " is outside the vocabulary (" +
                  bound_source + ")");
  std::cout << tok->decode(ids, skip_special) << std::flush;
  return 0;
}

}  // namespace qcoder::cli
