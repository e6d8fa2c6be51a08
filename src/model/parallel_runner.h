// Drives a ParallelModel from rank 0: the hook for every front end that runs over MPI
// (`qcoder generate` today, `qcoder serve` next).
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

  // Leader only. A new sequence on every rank (an empty KV cache of max_tokens); its slot id.
  int64_t open(int64_t max_tokens);
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

  // Followers: carry out the leader's calls until it stops. Failures end the job.
  void follow();

 private:
  enum Op : int64_t { kOpen = 1, kClose, kTruncate, kForward, kStop };
  void broadcast_command(std::vector<int64_t>& words, bool idle);
  void execute(const std::vector<int64_t>& words, std::span<SequenceOutput> out,
               ForwardTrace* trace);
  KvCache& cache(int64_t slot);

  ParallelModel& model_;
  dist::Communicator& world_;
  ThreadPool& pool_;
  std::map<int64_t, KvCache> caches_;
  int64_t next_slot_ = 0;
  bool stopped_ = false;
};

}  // namespace qcoder
