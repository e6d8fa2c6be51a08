// Token sampling with mlx-lm 0.32.2's semantics (mlx_lm/sample_utils.py, generate.py).
//
// Per step, for one row of vocabulary logits:
//   1. logits processors on the raw logits, in this order (make_logits_processors):
//      logit_bias, repetition penalty, presence penalty, frequency penalty. Each penalty sees
//      only the last *_context_size tokens of the history.
//   2. logprobs = logits - logsumexp(logits).
//   3. temperature 0: argmax of the logprobs (lowest index on ties, as mx.argmax). The filters
//      below are skipped, the processors are not.
//   4. otherwise the filters, on the logprobs at temperature 1, in make_sampler's fixed order:
//      top_p, min_p, XTC, top_k. A filter replaces the entries it drops by -inf.
//   5. categorical(logprobs * (1/temperature)).
//
// The random draws differ from MLX's (MLX uses threefry + Gumbel-max over its global key);
// the distributions are the same. Each Sampler owns a xoshiro256** generator seeded through
// splitmix64, so a seeded request gives the same tokens whatever else runs beside it. A step
// takes no draw when greedy, else one uniform for XTC (only when xtc_probability > 0) and one
// for the categorical, an inverse-CDF pick over float64 weights exp(scaled - max).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "sampling/rng.h"

namespace qcoder {

// The dtype the sampling arithmetic rounds to. mlx-lm runs steps 1-5 in the logits' dtype;
// for a bfloat16 model that is bfloat16, and the rounding matters: distinct logits can become
// equal logprobs, and greedy then takes the lower index (docs: model spec §8 item 7).
// kBFloat16 rounds the logits on entry and every elementwise result as MLX does; kFloat32
// keeps float32 throughout (the values of a float32 mlx-lm model).
enum class LogprobPrecision { kFloat32, kBFloat16 };

struct SamplingParams {
  // 0 = greedy. Must be finite, >= 0, and 1/temperature must be finite.
  float temperature = 0.0f;
  // Nucleus filter, in [0, 1]. 0 and 1 both mean off, as in make_sampler
  // (`if 0 < top_p < 1.0`); mlx-lm's server also accepts [0, 1].
  float top_p = 1.0f;
  // >= 0; 0 = off. top_k >= vocab keeps everything (mlx-lm raises ValueError there).
  int top_k = 0;
  // Relative to the top token's probability, in [0, 1]; 0 = off.
  float min_p = 0.0f;
  // >= 1: this many top tokens survive min_p whatever their probability.
  int min_tokens_to_keep = 1;
  // XTC ("exclude top choices"), applied with probability xtc_probability in [0, 1];
  // xtc_threshold in [0, 0.5]. mlx-lm's CLI and server pass encode("\n") + eos ids as the
  // special tokens; the caller supplies them here.
  float xtc_probability = 0.0f;
  float xtc_threshold = 0.1f;
  std::vector<int32_t> xtc_special_tokens;

  // Multiplicative, sign-aware: logit*p if logit < 0 else logit/p, once per distinct token in
  // the window. >= 0; 0 and 1 both mean off.
  float repetition_penalty = 1.0f;
  // Subtracted once per distinct token in the window. 0 = off; negative values are allowed.
  float presence_penalty = 0.0f;
  // Subtracted once per occurrence in the window. 0 = off; negative values are allowed.
  float frequency_penalty = 0.0f;
  // Window sizes (mlx-lm's *_context_size, default 20), >= 0. 0 means the WHOLE history:
  // mlx-lm slices `tokens[-context_size:]`, and tokens[-0:] is every token.
  int repetition_context_size = 20;
  int presence_context_size = 20;
  int frequency_context_size = 20;

  // Added to the logits first. Ids must be in [0, vocab); a repeated id adds up (as
  // logits.at[:, ids].add). Values must not be NaN or +inf; -inf bans the token.
  std::vector<std::pair<int32_t, float>> logit_bias;

  // nullopt: seeded from std::random_device.
  std::optional<uint64_t> seed;

  LogprobPrecision precision = LogprobPrecision::kFloat32;
};

// Throws qcoder::Error naming the first invalid field. vocab_size bounds the token ids in
// logit_bias and xtc_special_tokens.
void validate_sampling_params(const SamplingParams& params, size_t vocab_size);

// Reusable buffers for the filters (keeps the per-token path free of allocations).
struct SamplingScratch {
  std::vector<float> values;
  std::vector<std::pair<float, float>> weighted;  // (logprob, probability)
};

class Sampler {
 public:
  // Validates params (throws qcoder::Error) and seeds the generator.
  Sampler(SamplingParams params, size_t vocab_size);

  // logits: one row of vocab_size floats (not modified). history: the tokens the penalties
  // see, oldest first (only the windows' tails are read). For mlx-lm 0.32.2 parity that is
  // the whole prompt plus the generated tokens: generate_step appends every prefill chunk
  // (`tokens = mx.concat([tokens, processed])`) and BatchGenerator seeds its TokenBuffer
  // with the prompt.
  // Throws qcoder::Error on a wrong row size, NaN or +inf logits, all logits -inf after the
  // processors, or a history id outside [0, vocab).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  // The log-probabilities of the last sample() call: after the processors, before the
  // filters (what generate_step yields next to each token). Empty before the first call.
  std::span<const float> logprobs() const { return logprobs_; }

  const SamplingParams& params() const { return params_; }
  size_t vocab_size() const { return vocab_size_; }
  bool greedy() const { return params_.temperature == 0.0f; }

 private:
  SamplingParams params_;
  size_t vocab_size_;
  Xoshiro256 rng_;
  std::vector<float> logprobs_;
  std::vector<float> work_;
  std::vector<double> weights_;
  SamplingScratch scratch_;
};

// ---- Building blocks (in place on one row; exposed for tests and for callers that batch) ----

// Rounds x to the precision (identity for kFloat32).
inline float round_to(float x, LogprobPrecision precision) {
  return precision == LogprobPrecision::kBFloat16 ? bf16_to_f32(f32_to_bf16(x)) : x;
}

// Step 1. The history ids inside a penalty's window must be in [0, logits.size())
// (throws qcoder::Error otherwise).
void apply_logit_bias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias,
                      LogprobPrecision precision = LogprobPrecision::kFloat32);
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> history,
                              float penalty, int context_size,
                              LogprobPrecision precision = LogprobPrecision::kFloat32);
void apply_presence_penalty(std::span<float> logits, std::span<const int32_t> history,
                            float penalty, int context_size,
                            LogprobPrecision precision = LogprobPrecision::kFloat32);
void apply_frequency_penalty(std::span<float> logits, std::span<const int32_t> history,
                             float penalty, int context_size,
                             LogprobPrecision precision = LogprobPrecision::kFloat32);
// All four, skipping the ones that are off, as make_logits_processors builds them.
void apply_logits_processors(std::span<float> logits, std::span<const int32_t> history,
                             const SamplingParams& params);

// Step 2: logits -> logits - logsumexp(logits), as MLX computes it (lse = max + log(sum),
// in float32; rounded to bfloat16 in that precision). Throws qcoder::Error when every entry
// is -inf.
void to_logprobs(std::span<float> logits, LogprobPrecision precision = LogprobPrecision::kFloat32);

// Greedy: index of the maximum, lowest index on ties.
int32_t argmax(std::span<const float> values);

// Step 4 filters, on logprobs; dropped entries become -inf, kept ones are unchanged.
// top_p in (0, 1): sort ascending, drop an entry when the probability mass of the entries
// sorted above it is >= top_p * total mass; every entry equal to the lowest kept value is
// kept too (mlx-lm masks `logprobs < threshold`). Needs scratch space.
void apply_top_p(std::span<float> logprobs, float top_p, SamplingScratch& scratch);
// min_p in (0, 1]: drop entries < max + log(min_p); then the min_tokens_to_keep largest
// (ties: lowest indices) are kept regardless.
void apply_min_p(std::span<float> logprobs, float min_p, int min_tokens_to_keep,
                 SamplingScratch& scratch, LogprobPrecision precision = LogprobPrecision::kFloat32);
// XTC's deterministic part (the caller has already drawn that it applies): among the
// tokens with softmax probability > threshold, drop all but the least likely; special
// tokens are never dropped. Nothing happens when fewer than two exceed the threshold.
void apply_xtc(std::span<float> logprobs, float threshold, std::span<const int32_t> special_tokens,
               LogprobPrecision precision = LogprobPrecision::kFloat32);
// top_k >= 1: keep exactly the k largest (ties at the boundary: lowest indices; MLX's
// argpartition leaves that order unspecified). k >= size keeps everything.
void apply_top_k(std::span<float> logprobs, int top_k, SamplingScratch& scratch);

// Step 5: logprobs * (1/temperature), with 1/temperature computed in double and rounded to
// float as mlx-lm's `logits * (1.0 / temp)` does. temperature > 0.
void apply_temperature(std::span<float> logprobs, float temperature,
                       LogprobPrecision precision = LogprobPrecision::kFloat32);

// The distribution categorical() samples from: softmax of `scaled` in double.
std::vector<double> categorical_probs(std::span<const float> scaled);

// Inverse-CDF draw from softmax(scaled): weights w_i = exp(scaled_i - max) in double, summed
// in index order; returns the first i whose running sum exceeds u * total. u in [0, 1).
// Never returns an index of zero weight. `weights` is scratch.
int32_t categorical(std::span<const float> scaled, double u, std::vector<double>& weights);

}  // namespace qcoder
