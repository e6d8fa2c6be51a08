// What the engine runs its forward steps on: the whole model in this process, or (serving
// under MPI) a model spread over the ranks of a job and driven from rank 0
// (engine/parallel_backend.h). The engine owns the KV bookkeeping either way: its block pool,
// reference counts and prefix cache live in this process; a backend only computes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "core/thread_pool.h"
#include "kernels/kv_format.h"
#include "model/config.h"
#include "model/model.h"

namespace qcoder::engine {

class ForwardBackend {
 public:
  virtual ~ForwardBackend() = default;
  // The whole model's config: vocabulary, context.
  virtual const ModelConfig& config() const = 0;
  // The layers and heads this process's KV caches hold (all of them in one process).
  virtual const ModelConfig& kv_config() const = 0;
  // Bytes of one KV block on the rank whose share is largest: the pool's block count is the
  // KV budget over this, so no rank's KV memory exceeds the budget.
  virtual int64_t max_kv_block_bytes(int64_t block_tokens, const KvFormat& f) const = 0;
  // This process's model (its expert-use counters feed /metrics).
  virtual const Model& local_model() const = 0;
  // Once, before the first step: the engine's KV pool (blocks of block_tokens positions).
  virtual void start(int64_t /*block_tokens*/, int64_t /*blocks*/, const KvFormat& /*f*/,
                     int64_t /*ctx*/) {}
  // The pool copied block src into dst (copy on write) before the next step.
  virtual void block_copied(int32_t /*dst*/, int32_t /*src*/) {}
  // Model::forward over the batch, whose caches are reserved for their new tokens. Throws
  // qcoder::Error for a batch the model refuses, before any cache changes.
  virtual void forward(std::span<const SequenceInput> batch, std::span<SequenceOutput> out,
                       ThreadPool& pool) = 0;
};

// The whole model in this process: Model::forward.
std::unique_ptr<ForwardBackend> make_local_backend(const Model& model);

}  // namespace qcoder::engine
