// A loaded Qwen3-MoE model and its batched forward pass (spec/model.md §2).
//
// The forward pass takes a batch of sequences, each with its new tokens and its own KV cache
// (positions continue from the cache length). Every row is computed with the same arithmetic
// whatever else is in the batch, so a row's result does not depend on the batch, on how
// prompts are chunked, or on the thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/expert_usage.h"
#include "model/kv_cache.h"
#include "model/residency.h"
#include "model/weights.h"

namespace qcoder {

enum class LogitsMode { kNone, kLast, kAll };

struct SequenceInput {
  std::span<const int32_t> tokens;  // new tokens, appended to `cache`
  KvCache* cache = nullptr;
  LogitsMode logits = LogitsMode::kLast;
};

struct SequenceOutput {
  int64_t rows = 0;           // 0, 1 (kLast) or tokens.size() (kAll)
  std::vector<float> logits;  // [rows, vocab_size]
};

// Optional record of routing decisions: routes[layer] holds, for every token row of the batch
// in order, num_experts_per_tok expert ids sorted ascending (-1 for dense layers).
struct ForwardTrace {
  std::vector<std::vector<int32_t>> routes;
};

// Lets one rank of a sharded model (model/parallel_model.h) run this same forward pass on its
// part of the model; null hooks = the whole model in one process.
struct ForwardHooks {
  // Fills the residual stream x [rows, hidden] in place of the embedding lookup (a pipeline
  // stage after the first).
  std::function<void(float* x, int64_t rows)> input;
  // Receives x [rows, hidden] after the last layer (a pipeline stage before the last).
  std::function<void(const float* x, int64_t rows)> output;
  // Sum a block's partial output [rows * hidden] over the ranks of a stage (split heads /
  // experts). Called on every layer, on every rank of the stage.
  std::function<void(float* r, size_t count)> reduce_attention, reduce_moe;
  bool logits = true;  // false: no final norm or head here (out[i].rows = 0)
};

// What a forward pass checks before it changes any cache: every sequence has its own cache,
// token ids lie in [0, vocab_size), and no cache would pass its max_tokens. Throws
// qcoder::Error.
void validate_batch(std::span<const SequenceInput> batch, int64_t vocab_size);

class Model {
 public:
  // Opens DIR: config.json, the safetensors shards (mapped, not read) and binds the weights.
  // `rope` picks the RoPE scaling (default: the config's rope_scaling block).
  static std::unique_ptr<Model> load(const std::string& dir, const RopeOptions& rope = {});
  // One rank's part (model/shard_plan.h): binds only `selection` of DIR's weights; `part` is
  // the config its forward pass and KV caches see (its layers, its attention heads).
  static std::unique_ptr<Model> load_part(const std::string& dir, const ModelConfig& part,
                                          const WeightSelection& selection);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const WeightStore& store() const { return *store_; }
  const std::string& dir() const { return dir_; }

  // Routed-expert use counted since load, per decoder layer of this model (its share under MPI).
  const ExpertUsage& expert_usage() const { return *usage_; }
  // Installs a weight residency policy (null removes it). Not while a forward pass runs.
  void set_residency(std::shared_ptr<WeightResidency> residency) { residency_ = std::move(residency); }
  const WeightResidency* residency() const { return residency_.get(); }

  // --fast: 8-bit activations (QMatrix::act_bits) for the gate/up products and the output
  // head (see model.cc for why those). Not while a forward pass runs.
  void set_fast_numerics(bool fast);
  bool fast_numerics() const { return fast_; }

  // A fresh cache; max_tokens <= 0 means the usable context (model/rope_scaling.h).
  KvCache new_cache(int64_t max_tokens = 0) const;

  // Runs the new tokens of every sequence, appends their keys/values to the caches and fills
  // out[i] per batch[i].logits. Throws qcoder::Error on bad token ids or a full cache, before
  // any cache is modified.
  void forward(std::span<const SequenceInput> batch, std::span<SequenceOutput> out, ThreadPool& pool,
               ForwardTrace* trace = nullptr, const ForwardHooks* hooks = nullptr) const;

 private:
  Model() = default;
  std::string dir_;
  ModelConfig config_;
  std::unique_ptr<WeightStore> store_;
  ModelWeights weights_;
  std::unique_ptr<ExpertUsage> usage_;  // counters: updated by the const forward pass
  std::shared_ptr<WeightResidency> residency_;
  bool fast_ = false;
};

}  // namespace qcoder
