#include "model_options.h"

#include <cmath>

#include "core/error.h"

namespace qcoder::cli {

ModelOptions::ModelOptions(FlagSet& flags) : flags_(&flags) {
  flags.add("--rope-scaling", &scaling_,
            "RoPE scaling: config (the config's rope_scaling block, e.g. YaRN), none (plain RoPE, "
            "as mlx-lm runs qwen3_moe) or yarn (with --rope-factor / --rope-orig-ctx)");
  flags.add("--rope-factor", &factor_, "YaRN factor (>= 1; needs --rope-scaling yarn)");
  flags.add("--rope-orig-ctx", &orig_ctx_,
            "YaRN original context (default: the config's, else max_position_embeddings)");
  flags.add("--fast", &fast_,
            "8-bit activations for the gate/up products and the output head: ~1.15x prefill, "
            "still closer to the float64 reference than mlx-lm's bf16 (docs/PERFORMANCE.md)");
}

bool ModelOptions::given() const {
  return flags_ && (flags_->given("--rope-scaling") || flags_->given("--rope-factor") ||
                    flags_->given("--rope-orig-ctx"));
}

RopeOptions ModelOptions::rope() const {
  RopeOptions o;
  if (scaling_ == "config") o.source = RopeOptions::Source::kConfig;
  else if (scaling_ == "none") o.source = RopeOptions::Source::kNone;
  else if (scaling_ == "yarn") o.source = RopeOptions::Source::kYarn;
  else throw Error("--rope-scaling must be config, none or yarn, got \"" + scaling_ + "\"");
  if (flags_ && flags_->given("--rope-factor")) {
    if (!std::isfinite(factor_) || factor_ < 1.0)
      throw Error("--rope-factor must be a number >= 1, got " + std::to_string(factor_));
    o.factor = factor_;
  }
  if (flags_ && flags_->given("--rope-orig-ctx")) {
    if (orig_ctx_ <= 0) throw Error("--rope-orig-ctx must be positive, got " + std::to_string(orig_ctx_));
    o.original_ctx = orig_ctx_;
  }
  return o;
}

}  // namespace qcoder::cli
