// Flags shared by every command that runs (or sizes) the model: the RoPE scaling choice
// (model/rope_scaling.h) and --fast (8-bit activations, Model::set_fast_numerics). A command
// declares them with the constructor and reads rope() / fast() after parsing.
#pragma once

#include <cstdint>
#include <string>

#include "flags.h"
#include "model/config.h"

namespace qcoder::cli {

class ModelOptions {
 public:
  // Declares --rope-scaling config|none|yarn, --rope-factor F, --rope-orig-ctx N on `flags`,
  // which must outlive this object.
  explicit ModelOptions(FlagSet& flags);
  // After flags.parse(): the choice; throws qcoder::Error on an unknown mode or a bad value.
  RopeOptions rope() const;
  // Whether any of the RoPE flags was given (the parallel runs only take the config's block).
  bool given() const;
  // --fast: 8-bit activations for the gate/up products and the head (docs/PERFORMANCE.md).
  bool fast() const { return fast_; }
  // "fast" or "default", as bench reports it.
  const char* mode_name() const { return fast_ ? "fast" : "default"; }

 private:
  const FlagSet* flags_ = nullptr;
  std::string scaling_ = "config";
  double factor_ = 0;
  int64_t orig_ctx_ = 0;
  bool fast_ = false;
};

}  // namespace qcoder::cli
