#include "model/parallel_runner.h"

#include <algorithm>

#include "core/error.h"

namespace qcoder {
namespace {

// A command is a list of int64 words; the first broadcast carries kInline words (the length
// first), enough for a decode step of dozens of sequences; longer ones follow in a second.
constexpr size_t kInline = 64;

LogitsMode mode_of(int64_t v) {
  switch (v) {
    case 0:
      return LogitsMode::kNone;
    case 1:
      return LogitsMode::kLast;
    default:
      return LogitsMode::kAll;
  }
}

int64_t mode_word(LogitsMode m) {
  return m == LogitsMode::kNone ? 0 : m == LogitsMode::kLast ? 1 : 2;
}

// A follower's copy of the leader's block pool: the same ids, this rank's bytes. It keeps no
// reference counts (the leader decides which blocks are live) and never hands out blocks:
// every block a step writes arrives in that step's block tables. Memory is taken on first
// use, so a follower holds no more than the blocks the leader has used.
class MirrorBlocks final : public KvBlockAllocator {
 public:
  MirrorBlocks(int64_t block_tokens, int64_t block_bytes, int64_t blocks)
      : block_tokens_(block_tokens), block_bytes_(block_bytes), data_(static_cast<size_t>(blocks)) {}
  int64_t block_tokens() const override { return block_tokens_; }
  int64_t block_bytes() const override { return block_bytes_; }
  int32_t allocate() override { return -1; }  // the leader's table always covers the step
  void retain(int32_t) override {}
  void release(int32_t) override {}
  int32_t ref_count(int32_t) const override { return 1; }  // so a step never copies on its own
  uint8_t* block_data(int32_t block) override {
    if (block < 0 || static_cast<size_t>(block) >= data_.size())
      throw Error("paged forward: block id " + std::to_string(block) + " is outside the pool of " +
                  std::to_string(data_.size()));
    auto& d = data_[static_cast<size_t>(block)];
    if (!d) d = std::make_unique<uint8_t[]>(static_cast<size_t>(block_bytes_));
    return d.get();
  }

 private:
  int64_t block_tokens_, block_bytes_;
  std::vector<std::unique_ptr<uint8_t[]>> data_;
};

}  // namespace

ParallelRunner::ParallelRunner(ParallelModel& model, dist::Communicator& world, ThreadPool& pool)
    : model_(model), world_(world), pool_(pool) {}

ParallelRunner::~ParallelRunner() {
  if (leader() && !stopped_) stop();
}

KvCache& ParallelRunner::cache(int64_t slot) {
  auto it = caches_.find(slot);
  if (it == caches_.end()) throw Error("no open sequence in slot " + std::to_string(slot));
  return it->second;
}

int64_t ParallelRunner::length(int64_t slot) const {
  auto it = caches_.find(slot);
  if (it == caches_.end()) throw Error("no open sequence in slot " + std::to_string(slot));
  return it->second.length();
}

void ParallelRunner::broadcast_command(std::vector<int64_t>& words, bool idle) {
  std::vector<int64_t> head(kInline, 0);
  if (leader()) {
    head[0] = static_cast<int64_t>(words.size());
    std::copy_n(words.begin(), std::min(words.size(), kInline - 1), head.begin() + 1);
  }
  world_.broadcast(head.data(), head.size() * sizeof(int64_t), 0,
                   idle ? dist::Wait::kForever : dist::Wait::kDeadline);
  const auto n = static_cast<size_t>(head[0]);
  if (!leader()) {
    words.assign(head.begin() + 1,
                 head.begin() + 1 + static_cast<std::ptrdiff_t>(std::min(n, kInline - 1)));
    words.resize(n);
  }
  if (n > kInline - 1)
    world_.broadcast(words.data() + (kInline - 1), (n - (kInline - 1)) * sizeof(int64_t), 0);
}

void ParallelRunner::execute(const std::vector<int64_t>& w, std::span<SequenceOutput> out,
                             ForwardTrace* trace) {
  switch (w.at(0)) {
    case kOpen:
      caches_.emplace(w.at(1), model_.new_cache(w.at(2), kv_format_from_bits(w.at(3), w.at(4))));
      return;
    case kClose:
      caches_.erase(w.at(1));
      return;
    case kTruncate:
      cache(w.at(1)).truncate(w.at(2));
      return;
    case kForward: {
      const auto nseq = static_cast<size_t>(w.at(1));
      std::vector<SequenceInput> batch(nseq);
      std::vector<SequenceOutput> local(out.empty() ? nseq : 0);
      std::vector<std::vector<int32_t>> tokens(nseq);  // they travel as int64 words
      size_t at = 2;
      for (size_t s = 0; s < nseq; ++s) {
        const auto ntok = static_cast<size_t>(w.at(at + 2));
        tokens[s].assign(w.begin() + static_cast<std::ptrdiff_t>(at + 3),
                         w.begin() + static_cast<std::ptrdiff_t>(at + 3 + ntok));
        batch[s] = {tokens[s], &cache(w.at(at)), mode_of(w.at(at + 1))};
        at += 3 + ntok;
      }
      model_.forward(batch, out.empty() ? std::span<SequenceOutput>(local) : out, pool_, trace);
      return;
    }
    case kStartPaged: {
      paged_block_tokens_ = w.at(1);
      paged_format_ = kv_format_from_bits(w.at(3), w.at(4));
      paged_max_tokens_ = w.at(5);
      if (!leader())
        mirror_ = std::make_shared<MirrorBlocks>(
            paged_block_tokens_, kv_block_bytes(model_.kv_config(), paged_block_tokens_, paged_format_),
            w.at(2));
      return;
    }
    case kForwardPaged:
      forward_mirrored(w);
      return;
    default:
      throw Error("parallel runner: unknown command " + std::to_string(w.at(0)));
  }
}

int64_t ParallelRunner::open(int64_t max_tokens, const KvFormat& format) {
  std::vector<int64_t> w = {kOpen, next_slot_++, max_tokens, format.bits(), format.group};
  broadcast_command(w, false);
  execute(w, {}, nullptr);
  return w[1];
}

void ParallelRunner::close(int64_t slot) {
  cache(slot);  // throws for an unknown slot before anything is sent
  std::vector<int64_t> w = {kClose, slot};
  broadcast_command(w, false);
  execute(w, {}, nullptr);
}

void ParallelRunner::truncate(int64_t slot, int64_t length) {
  if (length < 0 || length > cache(slot).length())
    throw Error("truncate: bad length " + std::to_string(length));
  std::vector<int64_t> w = {kTruncate, slot, length};
  broadcast_command(w, false);
  execute(w, {}, nullptr);
}

void ParallelRunner::forward(std::span<const Step> steps, std::span<SequenceOutput> out,
                             ForwardTrace* trace) {
  if (out.size() != steps.size()) throw Error("forward: output span size differs from batch size");
  std::vector<SequenceInput> check(steps.size());
  for (size_t s = 0; s < steps.size(); ++s)
    check[s] = {steps[s].tokens, &cache(steps[s].slot), steps[s].logits};
  model_.validate(check);  // a refused batch is never broadcast
  std::vector<int64_t> w = {kForward, static_cast<int64_t>(steps.size())};
  for (const Step& st : steps) {
    w.push_back(st.slot);
    w.push_back(mode_word(st.logits));
    w.push_back(static_cast<int64_t>(st.tokens.size()));
    w.insert(w.end(), st.tokens.begin(), st.tokens.end());
  }
  try {
    broadcast_command(w, false);
    execute(w, out, trace);
  } catch (const std::exception& e) {
    world_.abort(std::string("forward failed: ") + e.what());  // the followers are mid-step
  }
}

void ParallelRunner::start_paged(int64_t block_tokens, int64_t blocks, const KvFormat& f,
                                 int64_t max_tokens) {
  std::vector<int64_t> w = {kStartPaged, block_tokens, blocks, f.bits(), f.group, max_tokens};
  broadcast_command(w, false);
  execute(w, {}, nullptr);
}

// kForwardPaged: [op, copies, (dst, src) x copies, sequences,
//                 (logits mode, cache length, tokens, blocks, block ids..., tokens...) x sequences]
void ParallelRunner::forward_paged(std::span<const SequenceInput> batch,
                                   std::span<const BlockCopy> copies,
                                   std::span<SequenceOutput> out) {
  if (paged_block_tokens_ == 0) throw Error("forward_paged before start_paged");
  if (out.size() != batch.size()) throw Error("forward: output span size differs from batch size");
  model_.validate(batch);  // a refused batch is never broadcast
  std::vector<int64_t> w = {kForwardPaged, static_cast<int64_t>(copies.size())};
  for (const BlockCopy& c : copies) w.insert(w.end(), {c.dst, c.src});
  w.push_back(static_cast<int64_t>(batch.size()));
  for (const SequenceInput& in : batch) {
    const int64_t len = in.cache->length(), n = static_cast<int64_t>(in.tokens.size());
    const auto ids = in.cache->blocks();
    // Fully reserved: no block to add or to copy on write (Model::forward's own reserve_more
    // then changes nothing that the followers would not see).
    if (in.cache->block_tokens() != paged_block_tokens_ || in.cache->blocks_needed(n) != 0)
      throw Error("forward_paged: a cache is not reserved for its new tokens in the paged pool");
    w.insert(w.end(), {mode_word(in.logits), len, n, static_cast<int64_t>(ids.size())});
    w.insert(w.end(), ids.begin(), ids.end());
    w.insert(w.end(), in.tokens.begin(), in.tokens.end());
  }
  try {
    broadcast_command(w, false);
    model_.forward(batch, out, pool_);
  } catch (const std::exception& e) {
    world_.abort(std::string("forward failed: ") + e.what());  // the followers are mid-step
  }
}

void ParallelRunner::forward_mirrored(const std::vector<int64_t>& w) {
  if (!mirror_) throw Error("paged forward before the paged pool was set up");
  size_t at = 1;
  const auto ncopies = static_cast<size_t>(w.at(at++));
  for (size_t c = 0; c < ncopies; ++c, at += 2)
    mirror_->copy_block(static_cast<int32_t>(w.at(at)), static_cast<int32_t>(w.at(at + 1)));
  const auto nseq = static_cast<size_t>(w.at(at++));
  std::vector<KvCache> views;
  views.reserve(nseq);
  std::vector<std::vector<int32_t>> tokens(nseq);
  std::vector<SequenceInput> batch(nseq);
  std::vector<SequenceOutput> out(nseq);
  for (size_t s = 0; s < nseq; ++s) {
    const LogitsMode mode = mode_of(w.at(at));
    const int64_t len = w.at(at + 1);
    const auto ntok = static_cast<size_t>(w.at(at + 2)), nblk = static_cast<size_t>(w.at(at + 3));
    at += 4;
    std::vector<int32_t> ids(w.begin() + static_cast<std::ptrdiff_t>(at),
                             w.begin() + static_cast<std::ptrdiff_t>(at + nblk));
    at += nblk;
    tokens[s].assign(w.begin() + static_cast<std::ptrdiff_t>(at),
                     w.begin() + static_cast<std::ptrdiff_t>(at + ntok));
    at += ntok;
    views.emplace_back(model_.kv_config(), paged_max_tokens_, mirror_, paged_format_);
    views.back().attach_prefix(ids, len);
    batch[s] = {tokens[s], &views.back(), mode};
  }
  model_.forward(batch, out, pool_);
}

void ParallelRunner::stop() {
  if (stopped_) return;
  stopped_ = true;
  std::vector<int64_t> w = {kStop};
  broadcast_command(w, false);
}

void ParallelRunner::follow() {
  try {
    for (;;) {
      std::vector<int64_t> w;
      broadcast_command(w, /*idle=*/true);  // the leader may be idle for as long as it likes
      if (w.at(0) == kStop) return;
      execute(w, {}, nullptr);
    }
  } catch (const std::exception& e) {
    world_.abort(e.what());
  }
}

}  // namespace qcoder
