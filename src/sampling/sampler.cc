#include "sampling/sampler.h"

#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <string>

#include "core/error.h"

namespace qcoder {
namespace {

std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

[[noreturn]] void invalid(const std::string& field, const std::string& why) {
  throw Error("sampling parameter " + field + " " + why);
}

void check_unit(float v, const char* field) {
  if (!(v >= 0.0f && v <= 1.0f)) invalid(field, "must be in [0, 1], got " + num(v));
}

void check_context(int v, const char* field) {
  if (v < 0) invalid(field, "must be >= 0 (0 = the whole history), got " + std::to_string(v));
}

void check_id(int32_t id, size_t vocab, const std::string& field) {
  if (id < 0 || static_cast<size_t>(id) >= vocab) {
    invalid(field, "has token id " + std::to_string(id) + " outside the vocabulary [0, " +
                       std::to_string(vocab) + ")");
  }
}

uint64_t resolve_seed(const std::optional<uint64_t>& seed) {
  if (seed) return *seed;
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

void validate_sampling_params(const SamplingParams& p, size_t vocab_size) {
  if (vocab_size == 0 || vocab_size > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw Error("sampling: vocabulary size " + std::to_string(vocab_size) +
                " must be in [1, 2^31)");
  }
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f) {
    invalid("temperature", "must be finite and >= 0 (0 = greedy), got " + num(p.temperature));
  }
  if (p.temperature > 0.0f && !std::isfinite(static_cast<float>(1.0 / p.temperature))) {
    invalid("temperature", "is too small: 1/temperature overflows float32");
  }
  check_unit(p.top_p, "top_p");
  if (p.top_k < 0) invalid("top_k", "must be >= 0 (0 = off), got " + std::to_string(p.top_k));
  check_unit(p.min_p, "min_p");
  if (p.min_tokens_to_keep < 1) {
    invalid("min_tokens_to_keep", "must be >= 1, got " + std::to_string(p.min_tokens_to_keep));
  }
  check_unit(p.xtc_probability, "xtc_probability");
  if (!(p.xtc_threshold >= 0.0f && p.xtc_threshold <= 0.5f)) {
    invalid("xtc_threshold", "must be in [0, 0.5], got " + num(p.xtc_threshold));
  }
  for (int32_t id : p.xtc_special_tokens) check_id(id, vocab_size, "xtc_special_tokens");
  if (!std::isfinite(p.repetition_penalty) || p.repetition_penalty < 0.0f) {
    invalid("repetition_penalty",
            "must be finite and >= 0 (0 or 1 = off), got " + num(p.repetition_penalty));
  }
  if (!std::isfinite(p.presence_penalty)) invalid("presence_penalty", "must be finite");
  if (!std::isfinite(p.frequency_penalty)) invalid("frequency_penalty", "must be finite");
  check_context(p.repetition_context_size, "repetition_context_size");
  check_context(p.presence_context_size, "presence_context_size");
  check_context(p.frequency_context_size, "frequency_context_size");
  for (const auto& [id, value] : p.logit_bias) {
    check_id(id, vocab_size, "logit_bias");
    if (std::isnan(value) || value == std::numeric_limits<float>::infinity()) {
      invalid("logit_bias", "value for token " + std::to_string(id) +
                                " must be finite or -inf, got " + num(value));
    }
  }
}

Sampler::Sampler(SamplingParams params, size_t vocab_size)
    : params_(std::move(params)), vocab_size_(vocab_size), rng_(resolve_seed(params_.seed)) {
  validate_sampling_params(params_, vocab_size_);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  if (logits.size() != vocab_size_) {
    throw Error("sampling: logits row has " + std::to_string(logits.size()) +
                " entries, expected the vocabulary size " + std::to_string(vocab_size_));
  }
  const SamplingParams& p = params_;
  const LogprobPrecision prec = p.precision;
  work_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    const float x = logits[i];
    if (std::isnan(x) || x == std::numeric_limits<float>::infinity()) {
      throw Error("sampling: logit " + std::to_string(i) + " is " + num(x) +
                  " (the model produced a non-finite value)");
    }
    work_[i] = round_to(x, prec);
  }

  apply_logits_processors(work_, history, p);
  to_logprobs(work_, prec);
  logprobs_.assign(work_.begin(), work_.end());

  if (greedy()) return argmax(work_);

  if (p.top_p > 0.0f && p.top_p < 1.0f) apply_top_p(work_, p.top_p, scratch_);
  if (p.min_p != 0.0f) apply_min_p(work_, p.min_p, p.min_tokens_to_keep, scratch_, prec);
  if (p.xtc_probability > 0.0f) {
    // mx.where(mx.random.uniform(0, 1) > xtc_probability, logits, masked): one draw per
    // step, masking when it is <= xtc_probability.
    if (rng_.uniform() <= static_cast<double>(p.xtc_probability)) {
      apply_xtc(work_, p.xtc_threshold, p.xtc_special_tokens, prec);
    }
  }
  if (p.top_k > 0) apply_top_k(work_, p.top_k, scratch_);
  apply_temperature(work_, p.temperature, prec);
  return categorical(work_, rng_.uniform(), weights_);
}

}  // namespace qcoder
