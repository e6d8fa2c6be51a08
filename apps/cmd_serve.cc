// qcoder serve: the OpenAI-compatible HTTP server (src/server) over the engine (src/engine).
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/process_memory.h"
#include "engine/engine.h"
#include "engine/parallel_backend.h"
#include "flags.h"
#include "model_options.h"
#include "parallel_cli.h"
#include "residency_flags.h"
#include "model/model.h"
#include "server/app.h"
#include "server/http_server.h"
#include "server/text_backend.h"

namespace qcoder::cli {
int run_serve(int argc, char** argv) {
  std::string model_dir, host = "127.0.0.1", api_key, alias, kv_budget = "4G", prefix_cache = "",
                         chat_template, max_body = "8M";
  int64_t port = 8080, slots = 16, ctx_size = 0, queue = 64, threads = 0, batch_tokens = 512,
          prefill_chunk = 256, block_tokens = 16, shutdown_timeout = 30, max_connections = 256,
          kv_bits = 16;
  FlagSet flags(
      "serve",
      "Serves the model over HTTP with the OpenAI API: /v1/chat/completions,\n"
      "/v1/completions, /v1/models, /health, /metrics, /tokenize, /detokenize and a chat\n"
      "page at /. KV memory is paged and allocated on demand up to --kv-budget.");
  flags.add("-m,--model", &model_dir, "model folder", true);
  flags.add("--host", &host, "address to bind (127.0.0.1 = this machine only)");
  flags.add("--port", &port, "port to listen on (0 = any free port, printed at start)");
  flags.add("--api-key", &api_key,
            "require 'Authorization: Bearer KEY' (also read from QCODER_API_KEY)");
  flags.add("--alias", &alias, "model name in /v1/models and responses (default: the folder name)");
  flags.add("--slots", &slots, "sequences generated at once (the running batch) at most");
  flags.add("--ctx-size", &ctx_size,
            "tokens one sequence may reach, prompt included (0 = the model's maximum)");
  flags.add("--kv-budget", &kv_budget,
            "KV cache memory for all sequences and the prefix cache (K/M/G suffixes), counted in\n"
            "bytes of the --kv-bits format");
  flags.add("--kv-bits", &kv_bits, "KV cache format: 16 = bf16 (default), 8 or 4 = affine quantized (group 64, as mlx-lm --kv-bits), 32 = float32");
  flags.add("--prefix-cache", &prefix_cache,
            "part of the KV budget the prefix cache may keep (default: half)");
  flags.add("--queue", &queue, "requests waiting for a slot at most (more get 429)");
  flags.add("--batch-tokens", &batch_tokens, "tokens per forward step at most");
  flags.add("--prefill-chunk", &prefill_chunk, "prompt tokens one sequence feeds per step at most");
  flags.add("--block-tokens", &block_tokens, "positions per KV block (a power of two)");
  flags.add("--max-body", &max_body, "largest request body (bigger ones get 413)");
  flags.add("--max-connections", &max_connections, "open connections at most (more get 503)");
  flags.add("--chat-template", &chat_template,
            "a Jinja chat template file to use instead of the model's");
  flags.add("--shutdown-timeout", &shutdown_timeout,
            "seconds SIGTERM waits for requests in flight");
  const ModelOptions model_options(flags);
  flags.add("-t,--threads", &threads, "forward-pass threads (0 = all cores)");
  ResidencyFlags residency;
  add_residency_flags(flags, &residency);
  ParallelFlags parallel;
  parallel.add_to(flags);
  if (!flags.parse(argc, argv)) return 0;
  (void)model_options.rope();  // a bad --rope-* value fails before the server listens
  if (api_key.empty())
    if (const char* k = std::getenv("QCODER_API_KEY")) api_key = k;
  if (alias.empty())
    alias = std::filesystem::path(model_dir).lexically_normal().filename().string();
  if (alias.empty()) alias = std::filesystem::weakly_canonical(model_dir).filename().string();
  if (port < 0 || port > 65535) throw Error("--port must be in 0..65535");
  if (slots < 1 || slots > 1024) throw Error("--slots must be in 1..1024");
  if (queue < 0) throw Error("--queue must be >= 0");

  engine::EngineOptions eo;
  eo.slots = static_cast<int>(slots);
  eo.max_queue = static_cast<int>(queue);
  eo.ctx_size = ctx_size;
  eo.batch_tokens = batch_tokens;
  eo.prefill_chunk = prefill_chunk;
  eo.block_tokens = block_tokens;
  eo.kv_budget_bytes = parse_byte_size("--kv-budget", kv_budget);
  eo.kv_format = kv_format_from_bits(kv_bits);
  eo.prefix_cache_bytes =
      prefix_cache.empty() ? eo.kv_budget_bytes / 2 : parse_byte_size("--prefix-cache", prefix_cache);
  eo.threads = static_cast<int>(threads);

  // Buffers of a vocabulary row or more (logits, sampler scratch) come and go with requests:
  // a fixed mmap threshold returns them to the system when freed, so the resident size follows
  // the live requests instead of glibc's high-water mark.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);

  // Signals go to the main thread only (sigwait below); every thread started later inherits the
  // mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGUSR1);  // the loader failed
  // Drains like SIGTERM. Under mpirun it is the one to use: mpirun forwards SIGUSR2 to every
  // rank, whereas a SIGTERM to mpirun kills the ranks after a moment (Open MPI 4.1), cutting
  // off the requests in flight.
  sigaddset(&sigs, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Under mpirun: every rank loads its shard here (collective, on the main thread, which
  // owns MPI). Ranks other than 0 then mirror rank 0's forward steps until it stops; the
  // signals mpirun forwards to them stay blocked, so a SIGTERM drains through rank 0.
  auto session = ParallelSession::start(parallel, flags, model_dir, ctx_size, threads, model_options.rope(),
                                        eo.kv_format, eo.kv_budget_bytes);
  // --mem-budget and --mlock apply to each rank's own weights (the budget is per rank).
  if (session) apply_residency_flags_on_rank(*session, residency);
  if (session) session->model().part().set_fast_numerics(model_options.fast());

  // KV blocks are allocated on demand: a budget beyond the free memory would end in the OOM
  // killer once the cache fills, so it is refused up front. Under mpirun the budget is each
  // rank's (the followers' mirrors fill as rank 0's pool does), every rank checks its own
  // machine, and the ranks on one machine share its memory.
  const uint64_t ranks_here = session ? static_cast<uint64_t>(session->ranks_on_this_node()) : 1;
  if (const uint64_t avail = available_memory_bytes();
      avail > 0 && eo.kv_budget_bytes > avail / ranks_here) {
    const std::string why =
        "--kv-budget " + kv_budget + " (" + std::to_string(eo.kv_budget_bytes) + " bytes" +
        (ranks_here > 1 ? " per rank, " + std::to_string(ranks_here) + " ranks on this machine" : "") +
        ") is more than the memory available now (" + std::to_string(avail) +
        " bytes, MemAvailable): lower --kv-budget or store KV in fewer bits (--kv-bits 8 or 4)";
    if (session) session->world().abort(why);
    throw Error(why);
  }
  if (session && !session->leader()) return session->follow();

  server::AppOptions ao;
  ao.api_key = api_key;
  ao.model_name = alias;
  server::ServerApp app(ao);
  server::HttpOptions ho;
  ho.host = host;
  ho.port = static_cast<int>(port);
  ho.max_body_bytes = parse_byte_size("--max-body", max_body);
  ho.max_connections = static_cast<int>(max_connections);
  server::HttpServer http(
      ho, [&app](const server::HttpRequest& r, server::ResponseWriter& w) { app.handle(r, w); });
  http.start();
  // The one stdout line: where to connect (port 0 picks a free one).
  std::cout << "listening on http://" << host << ":" << http.port() << std::endl;

  // Load while /health already answers 503.
  std::unique_ptr<Model> model;
  std::unique_ptr<server::TextBackend> text;
  std::unique_ptr<engine::Engine> engine;
  std::string load_error;
  std::thread loader([&] {
    try {
      const auto t0 = std::chrono::steady_clock::now();
      if (session) {
        engine = std::make_unique<engine::Engine>(engine::make_parallel_backend(session->runner()), eo);
      } else {
        model = Model::load(model_dir, model_options.rope());
        model->set_fast_numerics(model_options.fast());
        apply_residency_flags(*model, residency);
        engine = std::make_unique<engine::Engine>(*model, eo);
      }
      text = server::TextBackend::load(model_dir, chat_template);
      const ModelConfig& config = session ? session->config() : model->config();
      server::RequestDefaults d;
      d.sampling = server::load_sampling_defaults(model_dir);
      d.stop_tokens = load_stop_token_ids(model_dir, config);
      d.vocab_size = config.vocab_size;
      app.set_ready(*engine, *text, d);
      QCODER_INFO(
          "serve: " << alias << " ready in "
                    << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                    << " s (context " << engine->options().ctx_size << " tokens)");
    } catch (const std::exception& e) {
      load_error = e.what();
      kill(getpid(), SIGUSR1);
    }
  });

  int sig = 0;
  sigwait(&sigs, &sig);
  loader.join();
  if (!load_error.empty()) {
    http.stop();
    throw Error(load_error);
  }
  QCODER_INFO("serve: " << (sig == SIGINT ? "SIGINT" : sig == SIGUSR2 ? "SIGUSR2" : sig == SIGUSR1 ? "SIGUSR1" : "SIGTERM") << ": draining (up to "
                        << shutdown_timeout << " s)");
  app.set_draining();
  http.stop_accepting();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(shutdown_timeout);
  while (app.in_flight() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (app.in_flight() > 0)
    QCODER_WARN("serve: cancelling " << app.in_flight() << " requests still running");
  if (engine) engine->shutdown();
  http.stop();
  QCODER_INFO("serve: stopped");
  return 0;
}

}  // namespace qcoder::cli
