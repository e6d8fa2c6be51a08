#include "model/rope_scaling.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "kernels/reference/ops.h"

namespace qcoder {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& where, const std::string& why) { throw Error(where + ": " + why); }

std::optional<double> opt_number(const json& b, const char* key, const std::string& where) {
  auto it = b.find(key);
  if (it == b.end() || it->is_null()) return std::nullopt;
  if (!it->is_number() || !std::isfinite(it->get<double>()))
    bad(where, std::string("\"") + key + "\" must be a finite number, got " + it->dump());
  return it->get<double>();
}

std::optional<int64_t> opt_integer(const json& b, const char* key, const std::string& where) {
  const std::optional<double> v = opt_number(b, key, where);
  if (!v) return std::nullopt;
  if (*v != std::floor(*v) || *v <= 0 || *v > 9.0e15)
    bad(where, std::string("\"") + key + "\" must be a positive integer, got " + b.at(key).dump());
  return static_cast<int64_t>(*v);
}

void check_yarn(const RopeScaling& s, const std::string& where) {
  if (!std::isfinite(s.factor) || s.factor < 1.0)
    bad(where, "yarn factor must be a finite number >= 1, got " + std::to_string(s.factor));
  if (s.original_max_position_embeddings <= 0)
    bad(where, "original_max_position_embeddings must be positive, got " +
                   std::to_string(s.original_max_position_embeddings));
  if (!(s.beta_fast > 0) || !(s.beta_slow > 0) || s.beta_fast < s.beta_slow)
    bad(where, "beta_fast and beta_slow must be positive with beta_fast >= beta_slow, got " +
                   std::to_string(s.beta_fast) + " and " + std::to_string(s.beta_slow));
  if (s.attention_factor && !(*s.attention_factor > 0))
    bad(where, "attention_factor must be positive, got " + std::to_string(*s.attention_factor));
  const double usable = s.factor * static_cast<double>(s.original_max_position_embeddings);
  if (usable > 9.0e15) bad(where, "factor x original_max_position_embeddings is too large");
}

}  // namespace

std::optional<RopeScaling> parse_rope_scaling(const json& b, const std::string& where,
                                              int64_t max_position_embeddings) {
  if (!b.is_object()) bad(where, "must be an object or null, got " + b.dump());
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    auto it = b.find(key);
    if (it == b.end() || it->is_null()) continue;
    if (!it->is_string()) bad(where, std::string("\"") + key + "\" must be a string, got " + it->dump());
    type = it->get<std::string>();
    break;
  }
  if (type.empty()) bad(where, "has no \"rope_type\" (or \"type\")");
  if (type == "default") return std::nullopt;
  if (type != "yarn")
    bad(where, "rope type \"" + type +
                   "\" is not supported (qcoder implements \"yarn\"); pass --rope-scaling none to run "
                   "plain RoPE as mlx-lm does");
  static const std::set<std::string> known = {
      "rope_type", "type", "factor", "original_max_position_embeddings", "attention_factor", "beta_fast",
      "beta_slow", "mscale", "mscale_all_dim", "truncate", "rope_theta", "partial_rotary_factor"};
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!known.count(it.key())) QCODER_WARN(where << ": ignoring unknown yarn field \"" << it.key() << "\"");

  RopeScaling s;
  s.type = "yarn";
  s.original_max_position_embeddings =
      opt_integer(b, "original_max_position_embeddings", where).value_or(max_position_embeddings);
  // transformers requires the key; an explicit null stands for max_position_embeddings / L0.
  if (!b.contains("factor")) bad(where, "yarn needs \"factor\"");
  const std::optional<double> factor = opt_number(b, "factor", where);
  s.factor = factor ? *factor
                    : static_cast<double>(max_position_embeddings) /
                          static_cast<double>(s.original_max_position_embeddings);
  // transformers reads `beta_fast or 32`: null keeps the default.
  s.beta_fast = opt_number(b, "beta_fast", where).value_or(32.0);
  s.beta_slow = opt_number(b, "beta_slow", where).value_or(1.0);
  s.attention_factor = opt_number(b, "attention_factor", where);
  s.mscale = opt_number(b, "mscale", where);
  s.mscale_all_dim = opt_number(b, "mscale_all_dim", where);
  if (auto it = b.find("truncate"); it != b.end() && !it->is_null()) {
    if (!it->is_boolean()) bad(where, "\"truncate\" must be true or false, got " + it->dump());
    s.truncate = it->get<bool>();
  }
  if (const auto prf = opt_number(b, "partial_rotary_factor", where); prf && *prf != 1.0)
    bad(where, "partial_rotary_factor " + std::to_string(*prf) + " is not supported (all of head_dim rotates)");
  check_yarn(s, where);
  return s;
}

void resolve_rope_scaling(ModelConfig& c, const json* block, const std::string& where,
                          const RopeOptions& o) {
  using Source = RopeOptions::Source;
  if (block && block->is_object() && o.source != Source::kNone) {
    if (const auto theta = opt_number(*block, "rope_theta", where); theta && *theta != c.rope_theta)
      bad(where, "rope_theta " + block->at("rope_theta").dump() + " differs from the config's rope_theta");
  }
  if ((o.factor || o.original_ctx) && o.source != Source::kYarn)
    throw Error("--rope-factor and --rope-orig-ctx need --rope-scaling yarn");
  c.rope_scaling.reset();
  switch (o.source) {
    case Source::kNone:
      if (block) QCODER_DEBUG(where << ": ignored (--rope-scaling none: plain RoPE, as mlx-lm)");
      return;
    case Source::kConfig:
      if (block) c.rope_scaling = parse_rope_scaling(*block, where, c.max_position_embeddings);
      break;
    case Source::kYarn: {
      std::optional<RopeScaling> from_config;
      if (block && block->is_object() && block->value("rope_type", block->value("type", std::string())) == "yarn")
        from_config = parse_rope_scaling(*block, where, c.max_position_embeddings);
      RopeScaling s = from_config.value_or(RopeScaling{});
      if (o.factor) {
        s.factor = *o.factor;
      } else if (!from_config) {
        throw Error("--rope-scaling yarn needs --rope-factor (" + where + " has no yarn block)");
      }
      if (o.original_ctx) s.original_max_position_embeddings = *o.original_ctx;
      else if (!from_config) s.original_max_position_embeddings = c.max_position_embeddings;
      check_yarn(s, "--rope-scaling yarn");
      c.rope_scaling = s;
      break;
    }
  }
  if (c.rope_scaling) {
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true))
      QCODER_INFO("RoPE: " << describe_rope_scaling(c)
                           << " (mlx-lm runs plain RoPE for qwen3_moe; --rope-scaling none matches it)");
  }
}

std::vector<double> rope_inv_freq(const ModelConfig& c) {
  std::vector<double> f(static_cast<size_t>(c.head_dim / 2));
  if (!c.rope_scaling) {
    ref::rope_inv_freq(c.head_dim, c.rope_theta, f.data());
  } else {
    const RopeScaling& s = *c.rope_scaling;
    ref::yarn_inv_freq(c.head_dim, c.rope_theta, s.factor, static_cast<double>(s.original_max_position_embeddings),
                       s.beta_fast, s.beta_slow, s.truncate, f.data());
  }
  return f;
}

double rope_attention_factor(const ModelConfig& c) {
  if (!c.rope_scaling) return 1.0;
  const RopeScaling& s = *c.rope_scaling;
  if (s.attention_factor) return *s.attention_factor;
  return ref::yarn_attention_factor(s.factor, s.mscale.value_or(0.0), s.mscale_all_dim.value_or(0.0));
}

int64_t usable_context(const ModelConfig& c) {
  if (!c.rope_scaling) return c.max_position_embeddings;
  return static_cast<int64_t>(std::floor(c.rope_scaling->factor *
                                         static_cast<double>(c.rope_scaling->original_max_position_embeddings)));
}

std::string describe_rope_scaling(const ModelConfig& c) {
  if (!c.rope_scaling) return "none";
  char buf[160];
  std::snprintf(buf, sizeof buf, "yarn factor %g over %lld (attention factor %.6g)", c.rope_scaling->factor,
                static_cast<long long>(c.rope_scaling->original_max_position_embeddings),
                rope_attention_factor(c));
  return buf;
}

}  // namespace qcoder
