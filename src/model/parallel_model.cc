#include "model/parallel_model.h"

#include <time.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/log.h"
#include "model/rope_scaling.h"

namespace qcoder {
namespace {

constexpr int kActivationTag = 1;
constexpr int kLogitsTag = 2;

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

std::unique_ptr<ParallelModel> ParallelModel::load(const std::string& dir, const ShardPlan& plan,
                                                   dist::Communicator& world, const RopeOptions& rope) {
  if (plan.world_size() != world.size())
    throw Error("the plan is for " + std::to_string(plan.world_size()) + " ranks, the job has " +
                std::to_string(world.size()));
  std::unique_ptr<ParallelModel> m(new ParallelModel(world));
  m->plan_ = plan;
  m->config_ = load_model_config(dir, rope);
  m->shard_ = rank_shard(plan, m->config_, world.rank());
  // Every rank takes part in the split, stage by stage.
  m->stage_comm_ = world.split(m->shard_.stage, m->shard_.member);
  // Headers only: WeightStore validates each shard's header and maps the files; pages are
  // read when a kernel first touches them, and only this rank's tensors are ever touched.
  m->part_ = Model::load_part(dir, m->shard_.rank_config(m->config_), m->shard_.selection());
  QCODER_DEBUG(dir << ": rank " << world.rank() << " bound " << m->part_->weights().tensor_count
                   << " tensors, " << m->part_->weights().bytes << " bytes (layers "
                   << m->shard_.layer_begin << "-" << m->shard_.layer_end - 1 << ")");
  return m;
}

ParallelModel::~ParallelModel() = default;

KvCache ParallelModel::new_cache(int64_t max_tokens, const KvFormat& format) const {
  return KvCache(part_->config(), max_tokens > 0 ? max_tokens : usable_context(config_), format);
}

int64_t ParallelModel::max_kv_block_bytes(int64_t block_tokens, const KvFormat& f) const {
  int64_t most = 0;
  for (int r = 0; r < plan_.world_size(); ++r)
    most = std::max(most, kv_block_bytes(rank_shard(plan_, config_, r).rank_config(config_),
                                         block_tokens, f));
  return most;
}

void ParallelModel::validate(std::span<const SequenceInput> batch) const {
  validate_batch(batch, config_.vocab_size);
}

void ParallelModel::forward(std::span<const SequenceInput> batch, std::span<SequenceOutput> out,
                            ThreadPool& pool, ForwardTrace* trace) {
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = process_cpu_seconds();
  if (out.size() != batch.size()) throw Error("forward: output span size differs from batch size");
  validate(batch);
  if (trace) trace->routes.assign(static_cast<size_t>(config_.num_hidden_layers), {});

  // Micro-batches of consecutive sequences, about equal in tokens, one per stage: stage s
  // works on micro-batch m while stage s+1 works on m-1.
  const size_t S = plan_.stages.size();
  const size_t parts = std::max<size_t>(1, std::min(batch.size(), S));
  int64_t total = 0;
  for (const SequenceInput& in : batch) total += static_cast<int64_t>(in.tokens.size());
  std::vector<std::unique_ptr<dist::PendingSend>> sends;
  std::vector<std::vector<float>> send_buffers;  // alive until every send completed
  size_t begin = 0;
  int64_t done_tokens = 0;
  for (size_t p = 0; p < parts; ++p) {
    size_t end = begin + 1;
    const int64_t target = total * static_cast<int64_t>(p + 1) / static_cast<int64_t>(parts);
    done_tokens += static_cast<int64_t>(batch[begin].tokens.size());
    while (end < batch.size() && batch.size() - end > parts - p - 1 && done_tokens < target) {
      done_tokens += static_cast<int64_t>(batch[end].tokens.size());
      ++end;
    }
    if (p + 1 == parts) {
      for (; end < batch.size(); ++end)
        done_tokens += static_cast<int64_t>(batch[end].tokens.size());
    }
    run_micro_batch(batch.subspan(begin, end - begin), out.subspan(begin, end - begin), pool, trace,
                    sends, send_buffers);
    begin = end;
  }
  for (auto& s : sends) s->wait();

  // The logits travel from the logits rank to rank 0.
  const int from = plan_.logits_rank();
  if (from != 0) {
    const int64_t V = config_.vocab_size;
    for (size_t s = 0; s < batch.size(); ++s) {
      const int64_t len = static_cast<int64_t>(batch[s].tokens.size());
      const int64_t rows = batch[s].logits == LogitsMode::kNone || len == 0 ? 0
                           : batch[s].logits == LogitsMode::kAll            ? len
                                                                            : 1;
      if (rows == 0) continue;
      if (world_.rank() == from) {
        world_.send(out[s].logits.data(), out[s].logits.size() * sizeof(float), 0, kLogitsTag);
        out[s].rows = 0;
        out[s].logits.clear();
      } else if (world_.rank() == 0) {
        out[s].rows = rows;
        out[s].logits.assign(static_cast<size_t>(rows * V), 0.0f);
        world_.recv(out[s].logits.data(), out[s].logits.size() * sizeof(float), from, kLogitsTag);
      }
    }
  }
  ++forwards_;
  total_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  cpu_seconds_ += process_cpu_seconds() - cpu_start;
}

void ParallelModel::run_micro_batch(std::span<const SequenceInput> batch,
                                    std::span<SequenceOutput> out, ThreadPool& pool,
                                    ForwardTrace* trace,
                                    std::vector<std::unique_ptr<dist::PendingSend>>& sends,
                                    std::vector<std::vector<float>>& send_buffers) {
  const RankShard& sh = shard_;
  const int64_t H = config_.hidden_size;
  ForwardHooks hooks;
  if (sh.stage > 0) {
    // Member j of this stage hears from member j mod (size of the previous stage).
    const PipelineStage& prev = plan_.stages[static_cast<size_t>(sh.stage - 1)];
    hooks.input = [&](float* x, int64_t rows) {
      world_.recv(x, static_cast<size_t>(rows * H) * sizeof(float),
                  prev.first_rank + sh.member % prev.ranks, kActivationTag);
    };
  }
  if (sh.stage + 1 < sh.stages) {
    const PipelineStage& next = plan_.stages[static_cast<size_t>(sh.stage + 1)];
    hooks.output = [&](const float* x, int64_t rows) {
      send_buffers.emplace_back(x,
                                x + rows * H);  // the heap buffer stays put when the vector grows
      const std::vector<float>& buf = send_buffers.back();
      for (int j = sh.member; j < next.ranks; j += sh.stage_size)
        sends.push_back(world_.send_async(buf.data(), buf.size() * sizeof(float),
                                          next.first_rank + j, kActivationTag));
    };
  }
  if (sh.stage_size > 1) {
    const auto reduce = [this](float* r, size_t count) { stage_comm_->all_reduce_sum(r, count); };
    if (plan_.split_attention) hooks.reduce_attention = reduce;
    hooks.reduce_moe = reduce;
  }
  hooks.logits = sh.head;
  ForwardTrace local;
  part_->forward(batch, out, pool, trace ? &local : nullptr, &hooks);
  if (trace)
    for (size_t l = 0; l < local.routes.size(); ++l) {
      std::vector<int32_t>& dst = trace->routes[static_cast<size_t>(sh.layer_begin) + l];
      dst.insert(dst.end(), local.routes[l].begin(), local.routes[l].end());
    }
}

ParallelModel::Timing ParallelModel::timing() const {
  Timing t;
  t.forwards = forwards_;
  t.total_seconds = total_seconds_;
  t.cpu_seconds = cpu_seconds_;
  for (const dist::Communicator* c : {static_cast<const dist::Communicator*>(&world_),
                                      static_cast<const dist::Communicator*>(stage_comm_.get())}) {
    t.comm_seconds += c->stats().wait_seconds;
    t.comm_cpu_seconds += c->stats().wait_cpu_seconds;
    t.comm_bytes += c->stats().bytes;
    t.comm_operations += c->stats().operations;
  }
  return t;
}

}  // namespace qcoder
