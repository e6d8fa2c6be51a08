#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "chat/chat_template.h"
#include "core/log.h"
#include "flags.h"
#include "model_options.h"
#include "model/model.h"
#include "parallel_cli.h"
#include "residency_flags.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace qcoder::cli {

int run_generate(int argc, char** argv) {
  std::string model_dir, ids_text, prompt, chat_template_file;
  bool chat = false;
  int64_t n_new = 0, threads = 0, seed = 0, top_k = 0, kv_bits = 16;
  double temp = 0.0, top_p = 1.0, min_p = 0.0, rep = 1.0, presence = 0.0, frequency = 0.0;
  bool json = false, ignore_eos = false;
  FlagSet flags("generate",
                "Generates up to N tokens after a prompt (greedy unless --temp > 0), with\n"
                "mlx-lm's sampling semantics. Stops at the model's end-of-sequence tokens.");
  flags.add("-m,--model", &model_dir, "model folder", true);
  flags.add("--ids", &ids_text, "prompt as comma-separated token ids");
  flags.add("-p,--prompt", &prompt, "prompt as raw text (no chat template)");
  flags.add("-n,--max-tokens", &n_new, "tokens to generate", true);
  flags.add("--temp", &temp, "sampling temperature (0 = greedy)");
  flags.add("--top-p", &top_p, "nucleus sampling threshold (1 = off)");
  flags.add("--top-k", &top_k, "keep the k most likely tokens (0 = off)");
  flags.add("--min-p", &min_p, "drop tokens below min_p x the top probability (0 = off)");
  flags.add("--repetition-penalty", &rep, "penalty over the last 20 tokens (1 = off)");
  flags.add("--presence-penalty", &presence, "presence penalty over the last 20 tokens");
  flags.add("--frequency-penalty", &frequency, "frequency penalty over the last 20 tokens");
  flags.add("--seed", &seed, "random seed for sampling (default: random)");
  flags.add("--ignore-eos", &ignore_eos, "do not stop at end-of-sequence tokens");
  flags.add("--chat", &chat, "render -p TEXT as a user message through the chat template (generation prompt added)");
  flags.add("--chat-template", &chat_template_file, "with --chat: template file instead of the model's");
  flags.add("--json", &json, "print {\"ids\", \"text\", \"finish_reason\"} on one line");
  const ModelOptions model_options(flags);
  flags.add("-t,--threads", &threads, "threads (0 = all cores; under mpirun: per rank, 0 = the cores / ranks)");
  ResidencyFlags residency;
  add_residency_flags(flags, &residency);
  flags.add("--kv-bits", &kv_bits, "KV cache format: 16 = bf16 (default), 8 or 4 = affine quantized (group 64, as mlx-lm --kv-bits), 32 = float32");
  ParallelFlags parallel;
  parallel.add_to(flags);
  if (!flags.parse(argc, argv)) return 0;
  if (flags.given("--ids") == flags.given("--prompt"))
    throw Error("give exactly one of --ids and -p/--prompt");
  if (n_new < 0) throw Error("-n must be >= 0");
  const KvFormat kv_format = kv_format_from_bits(kv_bits);
  if ((chat || flags.given("--chat-template")) && !flags.given("--prompt")) throw Error("--chat needs -p TEXT");
  if (flags.given("--chat-template") && !chat) throw Error("--chat-template needs --chat");
  if (chat) {
    nlohmann::ordered_json request;
    request["messages"] = nlohmann::ordered_json::array({{{"role", "user"}, {"content", prompt}}});
    request["add_generation_prompt"] = true;
    prompt = ChatTemplate::load(model_dir, chat_template_file.empty() ? std::nullopt
                                                                      : std::optional<std::string>(chat_template_file))
                 .render(request);
  }

  // The folder's tokenizer turns -p into ids and the generated ids into "text" (null without one).
  const bool text_prompt = flags.given("--prompt");
  const std::unique_ptr<Tokenizer> tokenizer =
      text_prompt || std::filesystem::exists(std::filesystem::path(model_dir) / "tokenizer.json")
          ? Tokenizer::load(model_dir)
          : nullptr;
  const std::vector<int32_t> prompt_ids = text_prompt ? tokenizer->encode(prompt) : parse_id_list(ids_text);
  if (prompt_ids.empty()) throw Error("-p: the prompt is empty (no tokens)");
  SamplingParams sp;
  sp.temperature = static_cast<float>(temp);
  sp.top_p = static_cast<float>(top_p);
  sp.top_k = static_cast<int>(top_k);
  sp.min_p = static_cast<float>(min_p);
  sp.repetition_penalty = static_cast<float>(rep);
  sp.presence_penalty = static_cast<float>(presence);
  sp.frequency_penalty = static_cast<float>(frequency);
  if (flags.given("--seed")) sp.seed = static_cast<uint64_t>(seed);  // else a random seed

  const int64_t ctx = static_cast<int64_t>(prompt_ids.size()) + n_new;
  // Under mpirun: this rank's shard; ranks other than 0 mirror rank 0's steps and print nothing.
  auto session = ParallelSession::start(parallel, flags, model_dir, ctx, threads, model_options.rope(), kv_format);
  // Every rank refuses alike, before the followers start mirroring the leader.
  // --mem-budget and --mlock apply to each rank's own weights (the budget is per rank).
  if (session) apply_residency_flags_on_rank(*session, residency);
  if (session) session->model().part().set_fast_numerics(model_options.fast());
  if (session && !session->leader()) {
    const int code = session->follow();
    if (session->model().part().residency()) log_residency(session->model().part());
    return code;
  }
  std::unique_ptr<Model> model = session ? nullptr : Model::load(model_dir, model_options.rope());
  if (model) model->set_fast_numerics(model_options.fast());
  if (model) apply_residency_flags(*model, residency);
  const ModelConfig& config = session ? session->config() : model->config();
  Sampler sampler(sp, static_cast<size_t>(config.vocab_size));
  const std::vector<int32_t> stop_ids =
      ignore_eos ? std::vector<int32_t>{} : load_stop_token_ids(model_dir, config);
  std::unique_ptr<ThreadPool> pool = session ? nullptr : std::make_unique<ThreadPool>(static_cast<int>(threads));
  std::optional<KvCache> cache;
  if (!session) cache.emplace(model->config(), ctx, kv_format);
  const int64_t slot = session ? session->runner().open(ctx, kv_format) : -1;

  // Penalties see the prompt plus the generated tokens, as mlx-lm 0.32.2's generate_step
  // (the sampler keeps only the last penalty_context of them).
  std::vector<int32_t> history = prompt_ids;
  std::vector<int32_t> generated;
  std::string finish = "length";
  std::vector<int32_t> next_input = prompt_ids;
  // With -p and no --json the text is printed as it is generated, each character once complete.
  std::optional<StreamingDetokenizer> stream;
  if (text_prompt && !json) stream.emplace(*tokenizer, false);
  while (static_cast<int64_t>(generated.size()) < n_new) {
    SequenceOutput out;
    if (session) {
      const ParallelRunner::Step step{slot, next_input, LogitsMode::kLast};
      session->runner().forward({&step, 1}, {&out, 1});
    } else {
      SequenceInput in{next_input, &*cache, LogitsMode::kLast};
      model->forward({&in, 1}, {&out, 1}, *pool);
    }
    const int32_t tok = sampler.sample(out.logits, history);
    if (std::find(stop_ids.begin(), stop_ids.end(), tok) != stop_ids.end()) {
      finish = "stop";
      break;
    }
    generated.push_back(tok);
    if (stream) std::cout << stream->push(tok) << std::flush;
    history.push_back(tok);
    next_input.assign(1, tok);
  }

  if (json) {
    nlohmann::ordered_json j;  // keys in the documented order
    j["ids"] = generated;
    j["text"] = tokenizer ? nlohmann::ordered_json(tokenizer->decode(generated)) : nlohmann::ordered_json(nullptr);
    j["finish_reason"] = finish;
    std::cout << j.dump() << std::endl;
  } else if (stream) {
    std::cout << stream->flush() << std::endl;
    QCODER_INFO("finish_reason: " << finish << ", " << generated.size() << " tokens");
  } else {
    for (size_t i = 0; i < generated.size(); ++i) std::cout << (i ? "," : "") << generated[i];
    std::cout << std::endl;
    QCODER_INFO("finish_reason: " << finish << ", " << generated.size() << " tokens");
  }
  if (model && model->residency()) log_residency(*model);
  if (session && session->model().part().residency()) log_residency(session->model().part());
  return 0;
}

}  // namespace qcoder::cli
