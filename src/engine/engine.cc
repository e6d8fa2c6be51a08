#include "engine/engine.h"

#include <algorithm>
#include <optional>

#include "core/log.h"
#include "engine/block_pool.h"
#include "engine/prefix_cache.h"
#include "model/rope_scaling.h"

namespace qcoder::engine {

struct Engine::Kv {
  std::shared_ptr<KvBlockPool> pool;
  std::unique_ptr<PrefixCache> cache;
};

struct Engine::Counters {
  explicit Counters(int slots) : batch_sizes(static_cast<size_t>(slots) + 1) {}
  std::atomic<int64_t> running{0}, waiting{0}, max_running{0}, steps{0}, prompt_tokens{0},
      computed_prompt_tokens{0}, generated{0}, cache_queries{0}, cache_hits{0}, cached_tokens{0},
      preemptions{0}, forward_ns{0}, sampling_ns{0};
  std::vector<std::atomic<uint64_t>> batch_sizes;
};

struct Engine::Sequence {
  std::shared_ptr<RequestState> state;
  GenerationParams params;
  std::vector<int32_t> tokens;  // prompt, then the generated tokens
  int64_t prompt_len = 0;
  int64_t max_new = 0;  // generated tokens allowed
  int64_t generated = 0;
  std::optional<KvCache> cache;
  std::optional<Sampler> sampler;
  bool admitted_once = false;
  bool prompt_registered = false;
  int64_t planned = 0;  // tokens fed in the current step
};

namespace {

// The top n of a log-probability row, best first (ties: lower id first).
std::vector<std::pair<int32_t, float>> top_n(std::span<const float> lp, int n) {
  std::vector<int32_t> idx(lp.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
  const size_t k = std::min(idx.size(), static_cast<size_t>(n));
  std::partial_sort(
      idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
      [&](int32_t a, int32_t b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
  std::vector<std::pair<int32_t, float>> out;
  for (size_t i = 0; i < k; ++i) out.emplace_back(idx[i], lp[idx[i]]);
  return out;
}

}  // namespace

Engine::Engine(const Model& model, EngineOptions options)
    : Engine(make_local_backend(model), std::move(options)) {}

Engine::Engine(std::unique_ptr<ForwardBackend> backend, EngineOptions options)
    : backend_(std::move(backend)), options_(std::move(options)), pool_(options_.threads) {
  const ModelConfig& c = backend_->config();
  const bool ctx_given = options_.ctx_size > 0;
  // The usable context: YaRN's factor x original, else max_position_embeddings.
  if (options_.ctx_size <= 0 || options_.ctx_size > usable_context(c)) options_.ctx_size = usable_context(c);
  options_.slots = std::max(1, options_.slots);
  options_.batch_tokens = std::max<int64_t>(options_.batch_tokens, options_.slots);
  options_.prefill_chunk = std::max<int64_t>(1, options_.prefill_chunk);
  // Every rank's pool has the same block count; block_bytes is the largest rank's block.
  const uint64_t block_bytes =
      static_cast<uint64_t>(backend_->max_kv_block_bytes(options_.block_tokens, options_.kv_format));
  const int64_t blocks = static_cast<int64_t>(options_.kv_budget_bytes / block_bytes);
  if (blocks < 1)
    throw Error("the KV budget of " + std::to_string(options_.kv_budget_bytes) +
                " bytes is smaller than one block (" + std::to_string(block_bytes) + " bytes)");
  // One sequence must be able to reach the context: an explicit --ctx-size the budget cannot
  // hold is refused here, at start, rather than failing requests (or the machine) later; the
  // default context shrinks to what the budget holds.
  const int64_t budget_tokens = blocks * options_.block_tokens;
  if (budget_tokens < options_.ctx_size) {
    const uint64_t need = static_cast<uint64_t>((options_.ctx_size + options_.block_tokens - 1) / options_.block_tokens) * block_bytes;
    if (ctx_given)
      throw Error("a context of " + std::to_string(options_.ctx_size) + " tokens needs " + std::to_string(need) +
                  " bytes of KV memory in this format; the KV budget of " + std::to_string(options_.kv_budget_bytes) +
                  " bytes holds " + std::to_string(budget_tokens) +
                  " tokens: raise --kv-budget, lower --ctx-size or store KV in fewer bits (--kv-bits 8 or 4)");
    QCODER_INFO("engine: the KV budget holds " << budget_tokens << " tokens, less than the model's context of "
                                               << options_.ctx_size << "; serving contexts up to " << budget_tokens);
    options_.ctx_size = budget_tokens;
  }
  kv_block_bytes_ = block_bytes;
  kv_ = std::make_unique<Kv>();
  kv_->pool = std::make_shared<KvBlockPool>(
      options_.block_tokens,
      kv_block_bytes(backend_->kv_config(), options_.block_tokens, options_.kv_format), blocks);
  kv_->pool->set_copy_observer(
      [this](int32_t dst, int32_t src) { backend_->block_copied(dst, src); });
  backend_->start(options_.block_tokens, blocks, options_.kv_format, options_.ctx_size);
  // The prefix cache's bound in blocks of the largest rank (under MPI this process's blocks
  // may be smaller), expressed in this pool's block bytes.
  const uint64_t prefix_blocks =
      std::min(options_.prefix_cache_bytes, options_.kv_budget_bytes) / block_bytes;
  kv_->cache = std::make_unique<PrefixCache>(
      *kv_->pool, prefix_blocks * static_cast<uint64_t>(kv_->pool->block_bytes()));
  kv_->pool->set_reclaim([this] { return kv_->cache->reclaim_one(); });
  counters_ = std::make_unique<Counters>(options_.slots);
  QCODER_INFO("engine: " << options_.slots << " slots, context " << options_.ctx_size
                         << ", KV pool " << blocks << " blocks of " << options_.block_tokens
                         << " tokens (" << block_bytes << " bytes each, "
                         << kv_format_name(options_.kv_format) << ")");
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(); }

void Engine::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<RequestState> Engine::submit(GenerationParams params) {
  const ModelConfig& c = backend_->config();
  const int64_t n = static_cast<int64_t>(params.prompt.size());
  if (n == 0) throw Error("the prompt is empty");
  for (int32_t t : params.prompt)
    if (t < 0 || t >= c.vocab_size)
      throw Error("token id " + std::to_string(t) + " is outside the vocabulary (0.." +
                  std::to_string(c.vocab_size - 1) + ")");
  if (n >= options_.ctx_size)
    throw Error("the prompt has " + std::to_string(n) + " tokens; the context limit is " +
                std::to_string(options_.ctx_size) + " (prompt and completion together)");
  const int64_t prompt_blocks = (n + 1 + options_.block_tokens - 1) / options_.block_tokens;
  if (prompt_blocks > kv_->pool->capacity())
    throw Error("the prompt needs " + std::to_string(prompt_blocks) +
                " KV blocks; the KV budget holds " + std::to_string(kv_->pool->capacity()));
  auto seq = std::make_unique<Sequence>();
  seq->sampler.emplace(params.sampling, static_cast<size_t>(c.vocab_size));  // validates
  seq->state = std::make_shared<RequestState>();
  seq->tokens = params.prompt;
  seq->prompt_len = n;
  seq->max_new = options_.ctx_size - n;
  if (params.max_tokens >= 0) seq->max_new = std::min(seq->max_new, params.max_tokens);
  seq->cache.emplace(backend_->kv_config(), options_.ctx_size, kv_->pool, options_.kv_format);
  seq->params = std::move(params);
  auto state = seq->state;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) throw QueueFull("the server is shutting down");
    if (queued_.load() >= options_.max_queue)
      throw QueueFull("too many requests are waiting (" + std::to_string(options_.max_queue) + ")");
    ++queued_;
    counters_->waiting.store(queued_.load());
    inbox_.push_back(std::move(seq));
  }
  cv_.notify_all();
  return state;
}

EngineStats Engine::stats() const {
  EngineStats s;
  const Counters& k = *counters_;
  s.running = k.running.load();
  s.waiting = k.waiting.load();
  s.max_running = k.max_running.load();
  s.steps = k.steps.load();
  s.prompt_tokens = k.prompt_tokens.load();
  s.computed_prompt_tokens = k.computed_prompt_tokens.load();
  s.generated_tokens = k.generated.load();
  s.cache_queries = k.cache_queries.load();
  s.cache_hits = k.cache_hits.load();
  s.cached_tokens = k.cached_tokens.load();
  s.preemptions = k.preemptions.load();
  s.forward_seconds = static_cast<double>(k.forward_ns.load()) * 1e-9;
  s.sampling_seconds = static_cast<double>(k.sampling_ns.load()) * 1e-9;
  s.kv_blocks_used = kv_->pool->in_use();
  s.kv_blocks_total = kv_->pool->capacity();
  s.kv_block_bytes = kv_block_bytes_;  // the largest rank's (all of them in one process)
  s.prefix_cache_blocks = kv_->cache->entries();
  for (const auto& b : k.batch_sizes) s.batch_size_counts.push_back(b.load());
  return s;
}

void Engine::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_) break;
      while (!inbox_.empty()) {
        waiting_.push_back(std::move(inbox_.front()));
        inbox_.pop_front();
      }
    }
    drop_cancelled();
    admit();
    counters_->running.store(static_cast<int64_t>(running_.size()));
    counters_->waiting.store(queued_.load());
    const bool ran = step();
    counters_->running.store(static_cast<int64_t>(running_.size()));
    if (!ran) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return stop_ || !inbox_.empty(); });
    }
  }
  // Shutting down: whatever is left ends as cancelled.
  std::deque<std::unique_ptr<Sequence>> inbox;
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox.swap(inbox_);
  }
  for (auto& s : running_) finish(*s, FinishReason::kCancelled, "the server is shutting down");
  for (auto& s : waiting_) finish(*s, FinishReason::kCancelled, "the server is shutting down");
  for (auto& s : inbox) finish(*s, FinishReason::kCancelled, "the server is shutting down");
  running_.clear();
  waiting_.clear();
  kv_->cache->clear();
}

void Engine::drop_cancelled() {
  for (size_t i = 0; i < running_.size();) {
    if (running_[i]->state->cancelled()) {
      finish(*running_[i], FinishReason::kCancelled);
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  for (size_t i = 0; i < waiting_.size();) {
    if (waiting_[i]->state->cancelled()) {
      finish(*waiting_[i], FinishReason::kCancelled);
      waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
      --queued_;
    } else {
      ++i;
    }
  }
}

void Engine::admit() {
  const int64_t bt = options_.block_tokens;
  while (static_cast<int>(running_.size()) < options_.slots && !waiting_.empty()) {
    Sequence& s = *waiting_.front();
    const int64_t first_chunk =
        std::min<int64_t>(static_cast<int64_t>(s.tokens.size()), options_.prefill_chunk);
    // Leave room for the running sequences to take a block each before adding another.
    if (!running_.empty() &&
        kv_->pool->free_blocks() + kv_->cache->entries() <
            (first_chunk + bt - 1) / bt + 1 + static_cast<int64_t>(running_.size()))
      break;
    int64_t reuse = 0;
    if (s.params.cache_prompt) {
      const PrefixCache::Match m = kv_->cache->lookup(s.tokens);
      // At least the last token is recomputed: its logits start the generation. A partly
      // reused block is copied before it is written (KvCache's copy on write).
      reuse = std::min<int64_t>(m.tokens, static_cast<int64_t>(s.tokens.size()) - 1);
      if (reuse > 0)
        s.cache->attach_prefix({m.blocks.data(), static_cast<size_t>((reuse + bt - 1) / bt)},
                               reuse);
    }
    if (!s.admitted_once) {
      s.admitted_once = true;
      s.state->set_prompt_stats(s.prompt_len, reuse);
      counters_->prompt_tokens += s.prompt_len;
      ++counters_->cache_queries;
      if (reuse > 0) {
        ++counters_->cache_hits;
        counters_->cached_tokens += reuse;
      }
    }
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    --queued_;
  }
}

void Engine::preempt(Sequence& s) {
  // Keep what it computed in the prefix cache, so the recomputation is mostly a cache hit.
  register_prefix(s);
  s.cache->clear();
  ++counters_->preemptions;
  QCODER_DEBUG("engine: preempted a sequence of " << s.tokens.size() << " tokens (KV pool full)");
}

void Engine::register_prefix(Sequence& s) {
  if (!s.params.cache_prompt || s.cache->length() == 0) return;
  kv_->cache->insert({s.tokens.data(), static_cast<size_t>(s.cache->length())}, s.cache->blocks());
}

void Engine::finish(Sequence& s, FinishReason reason, const std::string& error) {
  if (s.cache) {
    if (reason != FinishReason::kError) register_prefix(s);
    s.cache->clear();
  }
  s.state->finish(reason, error);
}

bool Engine::step() {
  if (running_.empty()) return false;
  // Plan: decoding sequences first (one token each), then prompt chunks in arrival order.
  int64_t budget = options_.batch_tokens;
  for (auto& sp : running_) {
    Sequence& s = *sp;
    s.planned = static_cast<int64_t>(s.tokens.size()) - s.cache->length() == 1 ? 1 : 0;
    budget -= s.planned;
  }
  for (auto& sp : running_) {
    Sequence& s = *sp;
    const int64_t pending = static_cast<int64_t>(s.tokens.size()) - s.cache->length();
    if (pending <= 1 || budget <= 0) continue;
    s.planned = std::min({pending, options_.prefill_chunk, budget});
    budget -= s.planned;
  }
  // Reserve KV blocks, oldest first; when the pool is dry, preempt the newest sequence.
  for (size_t i = 0; i < running_.size();) {
    Sequence& s = *running_[i];
    if (s.planned == 0) {
      ++i;
      continue;
    }
    try {
      s.cache->reserve_more(s.planned);
      ++i;
    } catch (const KvOutOfMemory&) {
      if (running_.size() == 1) {
        finish(s, FinishReason::kError,
               "the request needs more KV memory than the server's budget (--kv-budget)");
        running_.clear();
        return true;
      }
      std::unique_ptr<Sequence> victim = std::move(running_.back());
      running_.pop_back();
      preempt(*victim);
      waiting_.push_front(std::move(victim));
      ++queued_;
    }
  }

  std::vector<Sequence*> batch;
  std::vector<SequenceInput> in;
  for (auto& sp : running_) {
    Sequence& s = *sp;
    if (s.planned == 0) continue;
    const int64_t from = s.cache->length();
    const bool last = from + s.planned == static_cast<int64_t>(s.tokens.size());
    in.push_back({{s.tokens.data() + from, static_cast<size_t>(s.planned)},
                  &*s.cache,
                  last ? LogitsMode::kLast : LogitsMode::kNone});
    batch.push_back(&s);
  }
  if (batch.empty()) return true;
  std::vector<SequenceOutput> out(batch.size());
  try {
    const auto t0 = Clock::now();
    backend_->forward(in, out, pool_);
    counters_->forward_ns +=
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
  } catch (const std::exception& e) {
    QCODER_WARN("engine: forward failed: " << e.what());
    for (Sequence* s : batch)
      finish(*s, FinishReason::kError, std::string("forward pass: ") + e.what());
    std::erase_if(running_,
                  [](const auto& s) { return s->state->finish_reason() != FinishReason::kNone; });
    return true;
  }
  ++counters_->steps;
  const int64_t bsize = static_cast<int64_t>(batch.size());
  ++counters_->batch_sizes[static_cast<size_t>(std::min<int64_t>(bsize, options_.slots))];
  if (bsize > counters_->max_running.load()) counters_->max_running.store(bsize);

  // Sampling: each sequence has its own sampler, so they run in parallel (a full-vocabulary
  // sort for top_p costs milliseconds per row) and the result does not depend on the split.
  struct Sampled {
    int32_t token = -1;
    std::string error;
    TokenEvent event;
  };
  std::vector<Sampled> sampled(batch.size());
  const auto t_sample = Clock::now();
  pool_.parallel_for(static_cast<int64_t>(batch.size()), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      Sequence& s = *batch[static_cast<size_t>(b)];
      Sampled& r = sampled[static_cast<size_t>(b)];
      if (out[static_cast<size_t>(b)].rows == 0) continue;
      try {
        r.token = s.sampler->sample(out[static_cast<size_t>(b)].logits, s.tokens);
      } catch (const std::exception& e) {
        r.error = e.what();
        continue;
      }
      r.event.token = r.token;
      if (s.params.top_logprobs >= 0) {
        const auto lp = s.sampler->logprobs();
        r.event.logprob = lp[static_cast<size_t>(r.token)];
        if (s.params.top_logprobs > 0) r.event.top = top_n(lp, s.params.top_logprobs);
      }
    }
  });
  counters_->sampling_ns +=
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t_sample).count();

  std::vector<Sequence*> done;
  for (size_t b = 0; b < batch.size(); ++b) {
    Sequence& s = *batch[b];
    if (s.cache->length() <= s.prompt_len) counters_->computed_prompt_tokens += s.planned;
    if (!s.prompt_registered && s.cache->length() >= s.prompt_len) {
      s.prompt_registered = true;
      if (s.params.cache_prompt)
        kv_->cache->insert({s.tokens.data(), static_cast<size_t>(s.prompt_len)}, s.cache->blocks());
    }
    if (out[b].rows == 0) continue;
    Sampled& r = sampled[b];
    if (!r.error.empty()) {
      finish(s, FinishReason::kError, "sampling: " + r.error);
      done.push_back(&s);
      continue;
    }
    const auto& stops = s.params.stop_tokens;
    if (std::find(stops.begin(), stops.end(), r.token) != stops.end()) {
      finish(s, FinishReason::kStop);
      done.push_back(&s);
      continue;
    }
    r.event.time = Clock::now();
    s.tokens.push_back(r.token);
    ++s.generated;
    ++counters_->generated;
    s.state->push(std::move(r.event));
    if (s.generated >= s.max_new || static_cast<int64_t>(s.tokens.size()) >= options_.ctx_size) {
      finish(s, FinishReason::kLength);
      done.push_back(&s);
    }
  }
  if (!done.empty())
    std::erase_if(running_, [&](const auto& s) {
      return std::find(done.begin(), done.end(), s.get()) != done.end();
    });
  return true;
}

}  // namespace qcoder::engine
