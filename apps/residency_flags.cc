#include "residency_flags.h"

#include <memory>

#include "core/log.h"
#include "core/process_memory.h"

namespace qcoder::cli {

void add_residency_flags(FlagSet& flags, ResidencyFlags* target) {
  flags.add("--mem-budget", &target->mem_budget,
            "bound the weight pages mapped in memory (e.g. 20G): the weights every token reads and "
            "the most used experts stay, other experts are unmapped after use (default: no bound)");
  flags.add("--mlock", &target->mlock,
            "lock the resident weights in RAM (all of them without --mem-budget)");
  flags.add("--residency-refresh", &target->refresh_every,
            "with --mem-budget: forward steps between updates of the most-used expert set");
}

void apply_residency_flags(Model& model, const ResidencyFlags& flags) {
  if (flags.mem_budget.empty() && !flags.mlock) return;
  if (flags.refresh_every < 1) throw Error("flag --residency-refresh: must be >= 1");
  ResidencyOptions o;
  o.budget_bytes = flags.mem_budget.empty() ? 0 : parse_byte_size("--mem-budget", flags.mem_budget);
  if (!flags.mem_budget.empty() && o.budget_bytes == 0) throw Error("flag --mem-budget: must be > 0");
  o.lock = flags.mlock;
  o.refresh_every = flags.refresh_every;
  auto r = std::make_shared<WeightResidency>(model.config(), model.weights(), model.expert_usage(), o);
  const ResidencyStats s = r->stats();
  QCODER_INFO("weight residency: budget " << s.budget_bytes << " bytes, " << s.base_bytes
              << " read every token, " << s.expert_bytes << " in " << s.experts << " experts"
              << (s.locked_bytes ? ", locked " + std::to_string(s.locked_bytes) : std::string()));
  model.set_residency(std::move(r));
}

void log_residency(const Model& model) {
  const ResidencyStats s = model.residency()->stats();
  const uint64_t uses = s.hot_uses + s.cold_uses;
  QCODER_INFO("weight residency: " << s.hot_experts << " hot experts (" << s.hot_bytes << " bytes), "
              << (uses ? 100.0 * static_cast<double>(s.hot_uses) / static_cast<double>(uses) : 0.0)
              << "% of " << uses << " routed uses hot, " << s.evictions << " evictions; weight pages mapped now "
              << mapped_file_rss(model.store().file_paths()) << " bytes, budget " << s.budget_bytes);
}

}  // namespace qcoder::cli
