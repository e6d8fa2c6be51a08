// --mem-budget and --mlock, shared by the commands that run a model (generate, serve, bench).
#pragma once

#include <string>

#include "flags.h"
#include "model/model.h"

namespace qcoder::cli {

struct ResidencyFlags {
  std::string mem_budget;  // empty = no budget
  bool mlock = false;
  int64_t refresh_every = 16;
};

void add_residency_flags(FlagSet& flags, ResidencyFlags* target);
// Installs the residency policy on `model` when a budget or --mlock was given (throws
// qcoder::Error, e.g. for a budget below the weights every token reads).
void apply_residency_flags(Model& model, const ResidencyFlags& flags);
// One stderr line: routed uses served by the hot set, evictions, weight pages mapped now.
void log_residency(const Model& model);

}  // namespace qcoder::cli
