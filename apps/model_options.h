// Flags shared by every command that runs (or sizes) the model: the RoPE scaling choice
// (model/rope_scaling.h). A command declares them with add_to() and reads rope() after parsing.
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
  // Whether any of the flags was given (the parallel runs only take the config's block).
  bool given() const;

 private:
  const FlagSet* flags_ = nullptr;
  std::string scaling_ = "config";
  double factor_ = 0;
  int64_t orig_ctx_ = 0;
};

}  // namespace qcoder::cli
