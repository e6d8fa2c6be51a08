#include "server/metrics.h"

#include <cstdio>

namespace qcoder::server {

namespace {

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof(b), "%.17g", v);
  return b;
}

void line(std::string& out, const std::string& name, const std::string& type,
          const std::string& help, double v) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " +
         num(v) + "\n";
}

// Routed-expert use per layer (experts never chosen are left out) and the weight residency
// policy's figures when one is installed (--mem-budget / --mlock).
void render_experts(std::string& out, const Model& model) {
  const ExpertUsage& u = model.expert_usage();
  const int64_t first = model.weights().first_layer;
  out += "# HELP qcoder_expert_routed_total Tokens routed to each expert, by decoder layer.\n"
         "# TYPE qcoder_expert_routed_total counter\n";
  for (int64_t l = 0; l < u.layers(); ++l)
    for (int64_t e = 0; e < u.experts(); ++e)
      if (const uint64_t n = u.count(l, e))
        out += "qcoder_expert_routed_total{layer=\"" + std::to_string(first + l) + "\",expert=\"" +
               std::to_string(e) + "\"} " + std::to_string(n) + "\n";
  const WeightResidency* r = model.residency();
  if (!r) return;
  const ResidencyStats s = r->stats();
  const struct {
    const char *name, *type, *help;
    double value;
  } rows[] = {
      {"qcoder_weight_budget_bytes", "gauge", "Weight memory budget (--mem-budget; 0 = none).", double(s.budget_bytes)},
      {"qcoder_weight_hot_experts", "gauge", "Experts kept resident as the most used.", double(s.hot_experts)},
      {"qcoder_weight_hot_bytes", "gauge", "Bytes of the resident expert set.", double(s.hot_bytes)},
      {"qcoder_weight_hot_uses_total", "counter", "Routed uses served by a resident expert.", double(s.hot_uses)},
      {"qcoder_weight_cold_uses_total", "counter", "Routed uses of experts outside the resident set.",
       double(s.cold_uses)},
      {"qcoder_weight_evictions_total", "counter", "Cold experts unmapped after their layer.", double(s.evictions)},
      {"qcoder_weight_locked_bytes", "gauge", "Weight bytes locked in RAM (--mlock).", double(s.locked_bytes)},
  };
  for (const auto& row : rows) line(out, row.name, row.type, row.help, row.value);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard<std::mutex> lock(mu_);
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum " + num(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics() = default;

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::add_tokens(int64_t prompt, int64_t completion) {
  prompt_tokens_.fetch_add(prompt, std::memory_order_relaxed);
  completion_tokens_.fetch_add(completion, std::memory_order_relaxed);
}

std::string Metrics::render(const engine::Engine* engine) const {
  std::string out;
  out +=
      "# HELP qcoder_requests_total HTTP requests by endpoint and status.\n# TYPE "
      "qcoder_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [k, v] : requests_)
      out += "qcoder_requests_total{endpoint=\"" + k.first + "\",status=\"" +
             std::to_string(k.second) + "\"} " + std::to_string(v) + "\n";
  }
  line(out, "qcoder_prompt_tokens_total", "counter", "Prompt tokens of answered requests.",
       static_cast<double>(prompt_tokens_.load()));
  line(out, "qcoder_generation_tokens_total", "counter", "Completion tokens sent.",
       static_cast<double>(completion_tokens_.load()));
  line(out, "qcoder_client_disconnects_total", "counter",
       "Requests cancelled because the client went away.",
       static_cast<double>(disconnects_.load()));
  ttft.render(out, "qcoder_time_to_first_token_seconds",
              "Time from request to first generated token.");
  inter_token.render(out, "qcoder_inter_token_latency_seconds",
                     "Time between consecutive generated tokens.");
  request_latency.render(out, "qcoder_request_duration_seconds",
                         "Time from request to its last token.");
  if (!engine) return out;
  const engine::EngineStats s = engine->stats();
  line(out, "qcoder_queue_depth", "gauge", "Requests waiting for a slot.",
       static_cast<double>(s.waiting));
  line(out, "qcoder_running_batch_size", "gauge", "Sequences in the running batch.",
       static_cast<double>(s.running));
  line(out, "qcoder_running_batch_size_max", "gauge",
       "Largest batch of sequences one forward step has run.", static_cast<double>(s.max_running));
  out +=
      "# HELP qcoder_batch_size Sequences per forward step.\n# TYPE qcoder_batch_size histogram\n";
  uint64_t cum = 0, total = 0;
  double sum = 0;
  for (size_t b = 0; b < s.batch_size_counts.size(); ++b) {
    cum += s.batch_size_counts[b];
    sum += static_cast<double>(b * s.batch_size_counts[b]);
    if (b > 0)
      out += "qcoder_batch_size_bucket{le=\"" + std::to_string(b) + "\"} " + std::to_string(cum) +
             "\n";
  }
  total = cum;
  out += "qcoder_batch_size_bucket{le=\"+Inf\"} " + std::to_string(total) +
         "\nqcoder_batch_size_sum " + num(sum) + "\nqcoder_batch_size_count " +
         std::to_string(total) + "\n";
  line(out, "qcoder_engine_steps_total", "counter", "Forward steps run.",
       static_cast<double>(s.steps));
  line(out, "qcoder_prompt_tokens_computed_total", "counter",
       "Prompt tokens run through the model (not from the cache).",
       static_cast<double>(s.computed_prompt_tokens));
  line(out, "qcoder_prefix_cache_queries_total", "counter",
       "Requests looked up in the prefix cache.", static_cast<double>(s.cache_queries));
  line(out, "qcoder_prefix_cache_hits_total", "counter", "Requests that reused cached KV blocks.",
       static_cast<double>(s.cache_hits));
  line(out, "qcoder_prefix_cache_hit_tokens_total", "counter",
       "Prompt tokens served from the prefix cache.", static_cast<double>(s.cached_tokens));
  line(out, "qcoder_prefix_cache_bytes", "gauge", "KV memory held by the prefix cache.",
       static_cast<double>(s.prefix_cache_blocks) * static_cast<double>(s.kv_block_bytes));
  line(out, "qcoder_kv_blocks_used", "gauge", "KV blocks in use (sequences and prefix cache).",
       static_cast<double>(s.kv_blocks_used));
  line(out, "qcoder_kv_blocks_total", "gauge", "KV blocks in the budget.",
       static_cast<double>(s.kv_blocks_total));
  line(out, "qcoder_forward_seconds_total", "counter",
       "Scheduler time spent in the model's forward pass.", s.forward_seconds);
  line(out, "qcoder_sampling_seconds_total", "counter", "Scheduler time spent sampling.",
       s.sampling_seconds);
  line(out, "qcoder_preemptions_total", "counter", "Sequences preempted because KV memory ran out.",
       static_cast<double>(s.preemptions));
  render_experts(out, engine->model());
  return out;
}

}  // namespace qcoder::server
