// qcoder: inference engine for Qwen3-Coder MoE models in MLX format.
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include "commands.h"
#include "core/error.h"

namespace {

constexpr const char* kUsage =
    "usage: qcoder COMMAND [flags]   (qcoder COMMAND --help for its flags)\n"
    "\n"
    "commands:\n"
    "  generate   generate tokens from a prompt (greedy by default)\n"
    "  logits     write the model's logits for a token sequence as float32\n"
    "  inspect    memory needed for weights, KV cache and buffers\n"
    "  tokenize   print the token ids of a text as a JSON array\n"
    "  detokenize write the text of token ids (raw UTF-8, no newline)\n"
    "  bench      prompt/generation speed and % of the measured bandwidth roofline\n"
    "  plan       place a model on N machines and estimate its decode speed\n"
    "  serve      OpenAI-compatible HTTP server (continuous batching, paged KV, prefix cache)\n"
    "  template   render a chat request through the model's chat template\n"
    "  parse-tools parse Qwen3-Coder tool calls in model output (stdin)\n";

struct Command {
  const char* name;
  int (*run)(int, char**);
};

constexpr Command kCommands[] = {
    {"generate", qcoder::cli::run_generate},
    {"logits", qcoder::cli::run_logits},
    {"inspect", qcoder::cli::run_inspect},
    {"tokenize", qcoder::cli::run_tokenize},
    {"detokenize", qcoder::cli::run_detokenize},
    {"bench", qcoder::cli::run_bench},
    {"plan", qcoder::cli::run_plan},
    {"serve", qcoder::cli::run_serve},
    {"template", qcoder::cli::run_template},
    {"parse-tools", qcoder::cli::run_parse_tools},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    (argc < 2 ? std::cerr : std::cout) << kUsage;
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc - 2, argv + 2);
    } catch (const qcoder::Error& e) {
      std::cerr << "qcoder " << c.name << ": error: " << e.what() << std::endl;
      return 1;
    } catch (const std::bad_alloc&) {
      std::cerr << "qcoder " << c.name << ": error: out of memory" << std::endl;
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "qcoder " << c.name << ": error: internal: " << e.what() << std::endl;
      return 1;
    }
  }
  std::cerr << kUsage << "qcoder: error: unknown command \"" << argv[1] << "\"" << std::endl;
  return 2;
}
