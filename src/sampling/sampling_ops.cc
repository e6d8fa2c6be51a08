// The building blocks of sampler.h, one per mlx-lm sample_utils function. Each comment quotes
// the mlx-lm 0.32.2 line it mirrors.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "sampling/sampler.h"

namespace qcoder {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void check_ids(std::span<const int32_t> ids, size_t vocab, const char* what) {
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= vocab) {
      throw Error(std::string(what) + ": token id " + std::to_string(id) +
                  " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
}

// tokens[-context_size:] in Python: context_size 0 (or more than the history) is everything.
std::span<const int32_t> window(std::span<const int32_t> history, int context_size) {
  if (context_size <= 0 || static_cast<size_t>(context_size) >= history.size()) return history;
  return history.subspan(history.size() - static_cast<size_t>(context_size));
}

// Distinct ids of `tokens`, sorted, written to `out`.
std::span<const int32_t> distinct(std::span<const int32_t> tokens, std::vector<int32_t>& out) {
  out.assign(tokens.begin(), tokens.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// The value v of the m-th largest entry (m >= 1, m <= size) and how many entries equal to v
// the m largest contain when ties are broken towards lower indices.
struct TopBoundary {
  float value;
  size_t equal_to_keep;
};

TopBoundary top_boundary(std::span<const float> values, size_t m, std::vector<float>& buf) {
  buf.assign(values.begin(), values.end());
  auto nth = buf.begin() + static_cast<std::ptrdiff_t>(m - 1);
  std::nth_element(buf.begin(), nth, buf.end(), std::greater<float>());
  const float v = *nth;
  size_t greater = 0;
  for (float x : values) greater += x > v;
  return {v, m - greater};
}

// Sets every entry that keep(i) rejects to -inf (keep sees index order, lowest first).
template <typename Keep>
void mask_except(std::span<float> values, Keep keep) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!keep(i)) values[i] = kNegInf;
  }
}

}  // namespace

// logits.at[:, indices].add(values)  (values cast to the logits' dtype; duplicates add up)
void apply_logit_bias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias,
                      LogprobPrecision precision) {
  for (const auto& [id, value] : bias) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size()) {
      throw Error("logit_bias: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(logits.size()) + ")");
    }
    float& l = logits[static_cast<size_t>(id)];
    l = round_to(l + round_to(value, precision), precision);
  }
}

// tokens = tokens[-context_size:]
// selected_logits = logits[:, tokens]
// selected_logits = mx.where(selected_logits < 0, selected_logits * penalty,
//                            selected_logits / penalty)
// logits[:, tokens] = selected_logits        (a duplicate id writes the same value: once)
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> history,
                              float penalty, int context_size, LogprobPrecision precision) {
  const std::span<const int32_t> win = window(history, context_size);
  check_ids(win, logits.size(), "repetition penalty history");
  std::vector<int32_t> ids;
  const float p = round_to(penalty, precision);
  for (int32_t id : distinct(win, ids)) {
    float& l = logits[static_cast<size_t>(id)];
    l = round_to(l < 0.0f ? l * p : l / p, precision);
  }
}

// logits[:, tokens] -= penalty      (gather, subtract, scatter: once per distinct id)
void apply_presence_penalty(std::span<float> logits, std::span<const int32_t> history,
                            float penalty, int context_size, LogprobPrecision precision) {
  const std::span<const int32_t> win = window(history, context_size);
  check_ids(win, logits.size(), "presence penalty history");
  std::vector<int32_t> ids;
  const float p = round_to(penalty, precision);
  for (int32_t id : distinct(win, ids)) {
    float& l = logits[static_cast<size_t>(id)];
    l = round_to(l - p, precision);
  }
}

// logits = logits.at[:, tokens].subtract(penalty)   (scatter-add: once per occurrence,
// rounding after each one)
void apply_frequency_penalty(std::span<float> logits, std::span<const int32_t> history,
                             float penalty, int context_size, LogprobPrecision precision) {
  const std::span<const int32_t> win = window(history, context_size);
  check_ids(win, logits.size(), "frequency penalty history");
  const float p = round_to(penalty, precision);
  for (int32_t id : win) {
    float& l = logits[static_cast<size_t>(id)];
    l = round_to(l - p, precision);
  }
}

// make_logits_processors: logit_bias if non-empty, then each penalty that is
// `not None and != 0`, in the order repetition, presence, frequency. A repetition penalty of
// 1 is skipped too: it is the identity.
void apply_logits_processors(std::span<float> logits, std::span<const int32_t> history,
                             const SamplingParams& params) {
  const LogprobPrecision prec = params.precision;
  if (!params.logit_bias.empty()) apply_logit_bias(logits, params.logit_bias, prec);
  if (params.repetition_penalty != 0.0f && params.repetition_penalty != 1.0f) {
    apply_repetition_penalty(logits, history, params.repetition_penalty,
                             params.repetition_context_size, prec);
  }
  if (params.presence_penalty != 0.0f) {
    apply_presence_penalty(logits, history, params.presence_penalty, params.presence_context_size,
                           prec);
  }
  if (params.frequency_penalty != 0.0f) {
    apply_frequency_penalty(logits, history, params.frequency_penalty,
                            params.frequency_context_size, prec);
  }
}

// logprobs = logits - mx.logsumexp(logits, keepdims=True)
// MLX: lse = log(sum exp(x - max)) + max with a float32 accumulator, stored in the logits'
// dtype; the subtraction is in that dtype too. Here the exps are float32 too, summed in
// double (MLX's float32 sum differs by ~1e-7 relative, far below a float32 ulp of the result).
void to_logprobs(std::span<float> logits, LogprobPrecision precision) {
  float max = kNegInf;
  for (float x : logits) max = std::max(max, x);
  if (!(max > kNegInf)) {
    throw Error(
        "sampling: every logit is -inf (after logit_bias and penalties); "
        "there is no token to sample");
  }
  double sum = 0.0;
  for (float x : logits) sum += std::exp(x - max);
  const float lse = round_to(static_cast<float>(std::log(sum)) + max, precision);
  for (float& x : logits) x = round_to(x - lse, precision);
}

// mx.argmax: the first maximum.
int32_t argmax(std::span<const float> values) {
  size_t best = 0;
  for (size_t i = 1; i < values.size(); ++i) {
    if (values[i] > values[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

// sorted_logprobs = mx.sort(logprobs, axis=-1)
// sorted_probs = mx.exp(sorted_logprobs.astype(mx.float32))
// mass_above = mx.cumsum(sorted_probs, axis=-1, reverse=True, inclusive=False)
// total_mass = mass_above[..., :1] + sorted_probs[..., :1]
// num_dropped = (mass_above >= top_p * total_mass).sum(axis=-1, keepdims=True)
// threshold = mx.take_along_axis(sorted_logprobs, num_dropped, axis=-1)
// return mx.where(logprobs < threshold, -float("inf"), logprobs)
//
// mass_above falls as the sorted index rises, so the dropped entries are a prefix of the
// ascending order. Write S(v) for the mass of the entries > v. The first (in descending order)
// entry of a group of equal values v has mass_above = S(v) and the others more, so the group
// is kept, whole, exactly when S(v) < top_p * total: the kept set is {x : S(x) < target}, and
// as S falls with x, that is every x >= the smallest such value. That value is found by a
// quickselect weighted by probability (expected O(n), no sort). Sums are in double (MLX:
// float32 cumsum), which can only matter when S(v) lands on the target to within rounding.
void apply_top_p(std::span<float> logprobs, float top_p, SamplingScratch& scratch) {
  auto& w = scratch.weighted;
  w.clear();
  double total = 0.0;
  for (float x : logprobs) {
    if (x > kNegInf) {
      const float p = std::exp(x);  // sorted_probs: exp in float32
      w.emplace_back(x, p);
      total += p;
    }
  }
  if (w.empty()) return;
  const double target = static_cast<double>(top_p) * total;
  // Candidates for the threshold are w[lo, hi); `above` is the mass of the entries greater
  // than all of them, all kept; `threshold` the smallest kept value so far.
  size_t lo = 0, hi = w.size();
  double above = 0.0;
  float threshold = std::numeric_limits<float>::infinity();
  while (lo < hi) {
    const auto first = w.begin() + static_cast<std::ptrdiff_t>(lo);
    const auto last = w.begin() + static_cast<std::ptrdiff_t>(hi);
    // Median-of-three pivot value, then a three-way partition: > pivot, == pivot, < pivot.
    float a = first->first, b = (first + (hi - lo) / 2)->first, c = (last - 1)->first;
    const float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
    const auto gt_end = std::partition(first, last, [&](const auto& e) { return e.first > pivot; });
    const auto eq_end =
        std::partition(gt_end, last, [&](const auto& e) { return e.first == pivot; });
    double mass_gt = 0.0, mass_eq = 0.0;
    for (auto it = first; it != gt_end; ++it) mass_gt += it->second;
    for (auto it = gt_end; it != eq_end; ++it) mass_eq += it->second;
    if (above + mass_gt < target) {
      // The pivot group is kept, and so is everything above it: look lower.
      threshold = pivot;
      above += mass_gt + mass_eq;
      lo = static_cast<size_t>(eq_end - w.begin());
    } else {
      // The pivot group is dropped, and so is everything below it: look higher.
      hi = static_cast<size_t>(gt_end - w.begin());
    }
  }
  for (float& x : logprobs) {
    if (x < threshold) x = kNegInf;
  }
}

// top_logprobs = mx.max(logprobs, axis=-1, keepdims=True)
// scaled_min_p = top_logprobs + math.log(min_p)      (a weak scalar: the logprobs' dtype)
// tokens_to_remove = logprobs < scaled_min_p
// if min_tokens_to_keep > 1: the argpartition top min_tokens_to_keep are never removed
void apply_min_p(std::span<float> logprobs, float min_p, int min_tokens_to_keep,
                 SamplingScratch& scratch, LogprobPrecision precision) {
  if (logprobs.empty()) return;
  float top = kNegInf;
  for (float x : logprobs) top = std::max(top, x);
  const float log_min_p =
      round_to(static_cast<float>(std::log(static_cast<double>(min_p))), precision);
  const float threshold = round_to(top + log_min_p, precision);
  const size_t m = std::min(logprobs.size(), static_cast<size_t>(std::max(min_tokens_to_keep, 1)));
  if (m <= 1) {
    // The top token always passes (log_min_p <= 0), which is all min_tokens_to_keep = 1 asks.
    for (float& x : logprobs) {
      if (x < threshold) x = kNegInf;
    }
    return;
  }
  const TopBoundary b = top_boundary(logprobs, m, scratch.values);
  size_t equal_left = b.equal_to_keep;
  mask_except(logprobs, [&](size_t i) {
    const float x = logprobs[i];
    if (x > b.value) return true;
    if (x == b.value && equal_left > 0) {
      --equal_left;
      return true;
    }
    return !(x < threshold);
  });
}

// probs = mx.softmax(logits, -1)
// mask = probs > mx.where(probs > xtc_threshold, probs, mx.inf).min(axis=-1, keepdims=True)
// if xtc_special_tokens: mask[..., xtc_special_tokens] = False
// mx.where(mask, -mx.inf, logits)
void apply_xtc(std::span<float> logprobs, float threshold, std::span<const int32_t> special_tokens,
               LogprobPrecision precision) {
  check_ids(special_tokens, logprobs.size(), "xtc_special_tokens");
  float max = kNegInf;
  for (float x : logprobs) max = std::max(max, x);
  if (!(max > kNegInf)) return;
  double sum = 0.0;
  for (float x : logprobs) sum += std::exp(static_cast<double>(x) - max);
  auto prob = [&](float x) {
    return round_to(static_cast<float>(std::exp(static_cast<double>(x) - max) / sum), precision);
  };
  const float thr = round_to(threshold, precision);
  float min_above = std::numeric_limits<float>::infinity();
  for (float x : logprobs) {
    const float p = prob(x);
    if (p > thr) min_above = std::min(min_above, p);
  }
  std::vector<bool> special(logprobs.size(), false);
  for (int32_t id : special_tokens) special[static_cast<size_t>(id)] = true;
  for (size_t i = 0; i < logprobs.size(); ++i) {
    if (!special[i] && prob(logprobs[i]) > min_above) logprobs[i] = kNegInf;
  }
}

// mask_idx = mx.argpartition(-logprobs, kth=top_k - 1, axis=-1)[..., top_k:]
// masked_logprobs = mx.put_along_axis(logprobs, mask_idx, -inf, axis=-1)
void apply_top_k(std::span<float> logprobs, int top_k, SamplingScratch& scratch) {
  if (top_k <= 0 || static_cast<size_t>(top_k) >= logprobs.size()) return;
  const TopBoundary b = top_boundary(logprobs, static_cast<size_t>(top_k), scratch.values);
  size_t equal_left = b.equal_to_keep;
  mask_except(logprobs, [&](size_t i) {
    const float x = logprobs[i];
    if (x > b.value) return true;
    if (x == b.value && equal_left > 0) {
      --equal_left;
      return true;
    }
    return false;
  });
}

// categorical_sampling: mx.random.categorical(logits * (1.0 / temp))
void apply_temperature(std::span<float> logprobs, float temperature, LogprobPrecision precision) {
  const float inv = round_to(static_cast<float>(1.0 / static_cast<double>(temperature)), precision);
  for (float& x : logprobs) x = round_to(x * inv, precision);
}

std::vector<double> categorical_probs(std::span<const float> scaled) {
  std::vector<double> p;
  categorical(scaled, 0.0, p);  // fills p with the weights
  double total = 0.0;
  for (double w : p) total += w;
  for (double& w : p) w /= total;
  return p;
}

int32_t categorical(std::span<const float> scaled, double u, std::vector<double>& weights) {
  float max = kNegInf;
  for (float x : scaled) max = std::max(max, x);
  if (!(max > kNegInf)) throw Error("sampling: every logprob is -inf; there is no token to sample");
  weights.resize(scaled.size());
  double total = 0.0;
  for (size_t i = 0; i < scaled.size(); ++i) {
    const float x = scaled[i];
    weights[i] = x > kNegInf ? std::exp(static_cast<double>(x) - static_cast<double>(max)) : 0.0;
    total += weights[i];
  }
  // The same additions in the same order reproduce `total` exactly, so with u < 1 some prefix
  // sum exceeds the target, and a prefix sum only grows past it at a positive weight.
  const double target = u * total;
  double running = 0.0;
  for (size_t i = 0; i < scaled.size(); ++i) {
    running += weights[i];
    if (running > target) return static_cast<int32_t>(i);
  }
  return argmax(scaled);  // unreachable for u in [0, 1)
}

}  // namespace qcoder
