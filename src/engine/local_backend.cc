#include "engine/forward_backend.h"

namespace qcoder::engine {
namespace {

class LocalBackend final : public ForwardBackend {
 public:
  explicit LocalBackend(const Model& model) : model_(model) {}
  const ModelConfig& config() const override { return model_.config(); }
  const ModelConfig& kv_config() const override { return model_.config(); }
  int64_t max_kv_block_bytes(int64_t block_tokens, const KvFormat& f) const override {
    return kv_block_bytes(model_.config(), block_tokens, f);
  }
  const Model& local_model() const override { return model_; }
  void forward(std::span<const SequenceInput> batch, std::span<SequenceOutput> out,
               ThreadPool& pool) override {
    model_.forward(batch, out, pool);
  }

 private:
  const Model& model_;
};

}  // namespace

std::unique_ptr<ForwardBackend> make_local_backend(const Model& model) {
  return std::make_unique<LocalBackend>(model);
}

}  // namespace qcoder::engine
