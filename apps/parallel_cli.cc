#include "parallel_cli.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "model/footprint.h"

namespace qcoder::cli {
namespace {

std::vector<int64_t> parse_counts(const std::string& text) {
  std::vector<int64_t> out;
  if (text.empty()) return out;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    try {
      size_t used = 0;
      const long long v = std::stoll(part, &used);
      if (used != part.size() || v < 1) throw std::invalid_argument(part);
      out.push_back(v);
    } catch (const std::exception&) {
      throw Error("--pipeline-layers: \"" + part +
                  "\" is not a positive layer count (give e.g. 31,31)");
    }
  }
  return out;
}

// VmHWM of /proc/self/status, in bytes (0 if unknown).
uint64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

}  // namespace

void ParallelFlags::add_to(FlagSet& flags) {
  flags.add("--parallel", &mode,
            "under mpirun: pipeline, expert, combined or auto (auto: pipeline when the model does "
            "not fit one rank's memory, else expert/tensor parallel; several machines: pipeline "
            "across them, expert within each)");
  flags.add("--stages", &stages, "combined: pipeline stages (0 = one per machine, else 2)");
  flags.add("--pipeline-layers", &pipeline_layers,
            "layers per pipeline stage, e.g. 31,31 (default: balanced by bytes)");
  flags.add(
      "--mem-per-rank", &mem_per_rank_gb,
      "memory one rank may use, GB, for auto (0 = the machine's available memory / its ranks)");
  flags.add("--comm-timeout", &comm_timeout_s,
            "seconds a rank waits on another before the job is aborted (0 = never)");
}

std::unique_ptr<ParallelSession> ParallelSession::start(const ParallelFlags& flags,
                                                        const FlagSet& parsed,
                                                        const std::string& model_dir, int64_t ctx,
                                                        int64_t threads, const RopeOptions& rope,
                                                        const KvFormat& kv, uint64_t kv_budget_bytes) {
  const ParallelMode mode = parse_parallel_mode(flags.mode);
  const std::vector<int64_t> counts = parse_counts(flags.pipeline_layers);
  if (flags.comm_timeout_s < 0) throw Error("--comm-timeout must be >= 0");
  if (!dist::launched_by_mpi()) {
    if (parsed.given("--parallel") && mode != ParallelMode::kAuto && mode != ParallelMode::kSingle)
      QCODER_WARN("--parallel " << flags.mode
                                << ": not started by mpirun, so running in one process");
    return nullptr;
  }
  dist::CommOptions options;
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(flags.comm_timeout_s * 1000));
  std::unique_ptr<ParallelSession> s(new ParallelSession());
  s->world_ = dist::make_world_communicator(options);
  if (s->world_->size() == 1) return nullptr;  // a job of one rank runs as one process
  dist::Communicator& world = *s->world_;
  try {
    const dist::Topology topo = dist::gather_topology(world);
    s->ranks_here_ = topo.ranks_on_node(topo.node_of_rank[static_cast<size_t>(world.rank())]);
    const ModelConfig config = load_model_config(model_dir);
    Cluster cluster;
    cluster.node_of_rank = topo.node_of_rank;
    for (int r = 0; r < world.size(); ++r) {
      const int node = topo.node_of_rank[static_cast<size_t>(r)];
      cluster.mem_per_rank.push_back(flags.mem_per_rank_gb > 0
                                         ? static_cast<uint64_t>(flags.mem_per_rank_gb * 1e9)
                                         : topo.mem_available[static_cast<size_t>(r)] /
                                               static_cast<uint64_t>(topo.ranks_on_node(node)));
    }
    PlanRequest req;
    req.mode = mode;
    req.stages = static_cast<int>(flags.stages);
    req.layers_per_stage = counts;
    req.kv_bits = kv.bits();
    req.ctx = ctx;
    // A server's KV pool may fill its whole budget: plan as if one sequence held that much.
    if (const uint64_t per_token = kv_bytes_per_token(config, req.kv_bits); kv_budget_bytes > 0 && per_token > 0)
      req.ctx = std::max<int64_t>(req.ctx, static_cast<int64_t>(kv_budget_bytes / per_token));
    const ShardPlan plan = make_shard_plan(config, model_bytes_from_config(config), cluster, req);
    if (world.rank() == 0) QCODER_INFO(describe_plan(plan, config));
    if (threads <= 0) {
      const int here = topo.ranks_on_node(topo.node_of_rank[static_cast<size_t>(world.rank())]);
      threads = std::max<int64_t>(
          1, static_cast<int64_t>(std::thread::hardware_concurrency()) / std::max(1, here));
    }
    s->pool_ = std::make_unique<ThreadPool>(static_cast<int>(threads));
    s->model_ = ParallelModel::load(model_dir, plan, world, rope);
    s->runner_ = std::make_unique<ParallelRunner>(*s->model_, world, *s->pool_);
  } catch (const std::exception& e) {
    world.abort(e.what());
  }
  return s;
}

int ParallelSession::follow() {
  runner_->follow();
  return 0;
}

void ParallelSession::report_timing() {
  const ParallelModel::Timing t = model_->timing();
  constexpr size_t kFields = 7;
  const double mine[kFields] = {static_cast<double>(t.forwards),
                                t.total_seconds,
                                t.comm_seconds,
                                t.cpu_seconds - t.comm_cpu_seconds,
                                static_cast<double>(t.comm_bytes),
                                static_cast<double>(t.comm_operations),
                                static_cast<double>(peak_rss_bytes())};
  std::vector<double> all(kFields * static_cast<size_t>(world_->size()));
  world_->all_gather(mine, sizeof mine, all.data());
  if (!leader()) return;
  for (int r = 0; r < world_->size(); ++r) {
    const double* v = &all[kFields * static_cast<size_t>(r)];
    const double per = v[0] > 0 ? 1000.0 / v[0] : 0.0;
    QCODER_DEBUG(
        "rank " << r << ": " << v[0] << " forward steps, " << v[1] * per << " ms each: waiting on "
                << "other ranks " << v[2] * per << " ms, compute CPU " << v[3] * per << " ms; "
                << v[5] / std::max(1.0, v[0]) << " operations, " << v[4] / std::max(1.0, v[0])
                << " bytes per step; peak RSS " << v[6] / 1e6 << " MB");
  }
}

void apply_residency_flags_on_rank(ParallelSession& session, const ResidencyFlags& flags) {
  try {
    apply_residency_flags(session.model().part(), flags);
  } catch (const std::exception& e) {
    session.world().abort(e.what());
  }
}

ParallelSession::~ParallelSession() {
  if (!runner_) return;  // start() failed before the model was loaded (the job is ending)
  if (leader()) runner_->stop();
  report_timing();
}

}  // namespace qcoder::cli
