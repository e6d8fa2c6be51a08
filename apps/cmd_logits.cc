#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "flags.h"
#include "model_options.h"
#include "parallel_cli.h"
#include "model/model.h"

namespace qcoder::cli {

int run_logits(int argc, char** argv) {
  std::string model_dir, ids_text, out_path;
  bool all_positions = false;
  int64_t threads = 0, kv_bits = 16;
  FlagSet flags("logits",
                "Runs the model on a token sequence and writes little-endian float32 logits,\n"
                "row-major: one row of vocab_size values for the last position, or one per position.");
  flags.add("-m,--model", &model_dir, "model folder (config.json + *.safetensors)", true);
  flags.add("--ids", &ids_text, "comma-separated token ids", true);
  flags.add("--all-positions", &all_positions, "write a row for every position");
  flags.add("--out", &out_path, "output file", true);
  const ModelOptions model_options(flags);
  flags.add("-t,--threads", &threads, "threads (0 = all cores)");
  flags.add("--kv-bits", &kv_bits, "KV cache format: 16 = bf16 (default), 8 or 4 = affine quantized (group 64, as mlx-lm --kv-bits), 32 = float32");
  ParallelFlags parallel;
  parallel.add_to(flags);
  if (!flags.parse(argc, argv)) return 0;

  const std::vector<int32_t> ids = parse_id_list(ids_text);
  const KvFormat kv_format = kv_format_from_bits(kv_bits);
  const LogitsMode mode = all_positions ? LogitsMode::kAll : LogitsMode::kLast;
  const auto n = static_cast<int64_t>(ids.size());
  SequenceOutput out;
  // Under mpirun: every rank computes its share; the logits arrive on rank 0, which writes them.
  if (auto session = ParallelSession::start(parallel, flags, model_dir, n, threads, model_options.rope(), kv_format)) {
    session->model().part().set_fast_numerics(model_options.fast());
    if (!session->leader()) return session->follow();
    const int64_t slot = session->runner().open(n, kv_format);
    const ParallelRunner::Step step{slot, ids, mode};
    session->runner().forward({&step, 1}, {&out, 1});
  } else {
    auto model = Model::load(model_dir, model_options.rope());
    model->set_fast_numerics(model_options.fast());
    ThreadPool pool(static_cast<int>(threads));
    KvCache cache(model->config(), n, kv_format);
    SequenceInput in{ids, &cache, mode};
    model->forward({&in, 1}, {&out, 1}, pool);
  }

  std::FILE* f = std::fopen(out_path.c_str(), "wb");
  if (!f) throw Error(out_path + ": cannot open for writing");
  const size_t count = out.logits.size();
  const bool ok = std::fwrite(out.logits.data(), sizeof(float), count, f) == count;  // x86/ARM: LE
  if (std::fclose(f) != 0 || !ok) throw Error(out_path + ": write failed");
  return 0;
}

}  // namespace qcoder::cli
