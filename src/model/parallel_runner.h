// Drives a ParallelModel from rank 0: the hook for every front end that runs over MPI
// (`qcoder generate` with slots below; `qcoder serve` with the paged mode further down).
//
// Rank 0 (the leader) owns the requests: it opens sequence slots, runs forward steps and reads
// the logits (they arrive on rank 0 whichever rank computes them), samples, and closes slots.
// Each call is broadcast to the other ranks (followers), which sit in follow() and mirror it on
// their own KV caches. So only rank 0 talks to the user (stdout, HTTP); the sampled tokens reach
// every rank as the inputs of the next step.
//
// A batch the model would refuse (bad token id, full cache) is refused on the leader before
// anything is broadcast, so a bad request costs the job nothing. Any other failure on any rank
// ends the whole job (Communicator::abort) with the error, rather than leaving ranks waiting.
//
//   leader:                                  followers:
//     ParallelRunner run(model, world, pool);  ParallelRunner run(model, world, pool);
//     auto slot = run.open(max_tokens);        run.follow();  // returns after stop()
//     run.forward(steps, outputs);  ...
//     run.close(slot); run.stop();
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "dist/communicator.h"
#include "model/parallel_model.h"

namespace qcoder {

class ParallelRunner {
 public:
  ParallelRunner(ParallelModel& model, dist::Communicator& world, ThreadPool& pool);
  ~ParallelRunner();  // the leader sends stop() if it has not

  bool leader() const { return world_.rank() == 0; }

  // Leader only. A new sequence on every rank (an empty KV cache of max_tokens in format); its
  // slot id.
  int64_t open(int64_t max_tokens, const KvFormat& format = {});
  void close(int64_t slot);
  // Drops positions past `length` on every rank (prefix reuse), as KvCache::truncate.
  void truncate(int64_t slot, int64_t length);
  int64_t length(int64_t slot) const;

  struct Step {
    int64_t slot = 0;
    std::span<const int32_t> tokens;
    LogitsMode logits = LogitsMode::kLast;
  };
  // Leader only: runs one forward over the batch on every rank; out as ParallelModel::forward
  // on rank 0. Throws qcoder::Error, before anything is sent, for a batch the model refuses.
  void forward(std::span<const Step> batch, std::span<SequenceOutput> out,
               ForwardTrace* trace = nullptr);
  // Leader only: releases the followers from follow().
  void stop();

  // Paged mode (the server's engine, engine/parallel_backend.h). The leader's KV lives in the
  // engine's block pool, whose bookkeeping (allocation, reference counts, prefix cache) stays
  // on the leader. Each follower keeps a mirror pool of the same block count holding its own
  // layers and heads, addressed by the leader's block ids. A block's bytes change only by a
  // forward step writing into it or by a copy on write; the leader sends, with each step, the
  // copies made since the last one (replayed first, in order) and every sequence's block
  // table, so the mirrors always hold what the leader's blocks hold.
  struct BlockCopy {
    int32_t dst = 0, src = 0;
  };
  // Leader only, once: the pool's shape (blocks of block_tokens positions in format f) and
  // the longest sequence.
  void start_paged(int64_t block_tokens, int64_t blocks, const KvFormat& f, int64_t max_tokens);
  // Leader only: one forward step over batch, whose caches draw on the leader's pool and are
  // reserved for their new tokens (KvCache::reserve_more); copies as above. Throws
  // qcoder::Error, before anything is sent, for a batch the model refuses.
  void forward_paged(std::span<const SequenceInput> batch, std::span<const BlockCopy> copies,
                     std::span<SequenceOutput> out);
  ParallelModel& model() { return model_; }
  dist::Communicator& world() { return world_; }

  // Followers: carry out the leader's calls until it stops. Failures end the job.
  void follow();

 private:
  enum Op : int64_t { kOpen = 1, kClose, kTruncate, kForward, kStop, kStartPaged, kForwardPaged };
  void broadcast_command(std::vector<int64_t>& words, bool idle);
  void execute(const std::vector<int64_t>& words, std::span<SequenceOutput> out,
               ForwardTrace* trace);
  KvCache& cache(int64_t slot);
  void forward_mirrored(const std::vector<int64_t>& words);  // a follower's kForwardPaged

  ParallelModel& model_;
  dist::Communicator& world_;
  ThreadPool& pool_;
  std::map<int64_t, KvCache> caches_;
  // Paged mode: a follower's mirror pool (the leader's is the engine's).
  std::shared_ptr<KvBlockAllocator> mirror_;
  KvFormat paged_format_;
  int64_t paged_max_tokens_ = 0;
  int64_t paged_block_tokens_ = 0;
  int64_t next_slot_ = 0;
  bool stopped_ = false;
};

}  // namespace qcoder
