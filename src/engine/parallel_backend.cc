#include "engine/parallel_backend.h"

#include <vector>

#include "core/error.h"

namespace qcoder::engine {
namespace {

class ParallelBackend final : public ForwardBackend {
 public:
  explicit ParallelBackend(ParallelRunner& runner) : runner_(runner) {
    if (!runner_.leader()) throw Error("the engine runs on rank 0 only");
  }
  const ModelConfig& config() const override { return runner_.model().config(); }
  const ModelConfig& kv_config() const override { return runner_.model().kv_config(); }
  int64_t max_kv_block_bytes(int64_t block_tokens, const KvFormat& f) const override {
    return runner_.model().max_kv_block_bytes(block_tokens, f);
  }
  const Model& local_model() const override { return runner_.model().part(); }
  void start(int64_t block_tokens, int64_t blocks, const KvFormat& f, int64_t ctx) override {
    runner_.start_paged(block_tokens, blocks, f, ctx);
  }
  void block_copied(int32_t dst, int32_t src) override { copies_.push_back({dst, src}); }
  // The runner computes with its own thread pool (the session's -t), not the engine's.
  void forward(std::span<const SequenceInput> batch, std::span<SequenceOutput> out,
               ThreadPool&) override {
    // The copies go with this step. forward_paged throws only before broadcasting (after
    // that a failure ends the job), so a refused step keeps them for the next one.
    std::vector<ParallelRunner::BlockCopy> sent;
    sent.swap(copies_);
    try {
      runner_.forward_paged(batch, sent, out);
    } catch (...) {
      sent.insert(sent.end(), copies_.begin(), copies_.end());
      copies_.swap(sent);
      throw;
    }
    // forward_paged refuses caches that are not fully reserved, so the step itself cannot
    // have copied a block behind the followers' backs.
    if (!copies_.empty()) runner_.world().abort("a KV block was copied during a forward step");
  }

 private:
  ParallelRunner& runner_;
  std::vector<ParallelRunner::BlockCopy> copies_;
};

}  // namespace

std::unique_ptr<ForwardBackend> make_parallel_backend(ParallelRunner& runner) {
  return std::make_unique<ParallelBackend>(runner);
}

}  // namespace qcoder::engine
