// Sharded equals unsharded (issue 7): under mpirun -np 2 and -np 3, every plan (pipeline,
// expert, combined) on committed fixtures whose layer, expert and KV-head counts do not divide
// by the rank count gives the unsharded model's greedy tokens and its logits within
// kLogitTolerance (docs/DISTRIBUTED.md says why that bound). Rank 0 writes the measured
// differences to mpi-report-npN.txt in the build folder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "model/model.h"
#include "model/parallel_model.h"
#include "model/parallel_runner.h"
#include "model/shard_plan.h"
#include "mpi/mpi_plans.h"
#include "mpi/mpi_world.h"

namespace qcoder {
namespace {

using testing::plan_for;
using testing::world;

// Max |sharded - unsharded| over a logits row, in units of that row's standard deviation
// (docs/DISTRIBUTED.md, "Accuracy"). Splitting heads and experts reorders two float32 sums
// per layer (o_proj's groups, the MoE's weighted experts): ~1e-7 relative. The SIMD kernels
// then quantize every activation row to int16 per weight group (~1.5e-5 relative steps), so
// the first differing bit moves a rounding step: measured up to 4e-4 sigma (float32 KV). The gate, 2e-3
// sigma, is 5x that and below the engine's own accuracy gate against float64 (5e-3 sigma):
// two results that both pass that gate may differ by 1e-2 sigma.
constexpr double kLogitTolerance = 2e-3;
// A row whose experts differ from the unsharded run's in some layer (a near-tie in the
// router, tipped by the rounding above) is held to this instead, and such (row, layer) pairs
// may be at most kMaxFlipShare of all. Greedy tokens must be identical regardless.
constexpr double kFlippedRowTolerance = 0.1;
constexpr double kMaxFlipShare = 0.05;

std::string fixture_dir(const std::string& name) {
  return std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}

std::vector<int32_t> prompt(size_t n, int64_t vocab, uint32_t seed) {
  std::vector<int32_t> ids(n);
  for (auto& x : ids) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<int32_t>((seed >> 8) % static_cast<uint32_t>(vocab));
  }
  return ids;
}

// Prefill logits of every prompt position, then the logits of `steps` greedy decode steps.
struct Generation {
  std::vector<std::vector<float>> rows;
  std::vector<int32_t> tokens;
  std::vector<ForwardTrace> traces;  // one per forward call: the prompt, then each step
};

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

template <class Forward>
Generation generate(const std::vector<int32_t>& ids, int steps, int64_t V, Forward&& fwd) {
  Generation run;
  SequenceOutput out;
  run.traces.resize(static_cast<size_t>(steps) + 1);
  fwd(ids, LogitsMode::kAll, out, &run.traces[0]);
  std::vector<float> last;
  for (int64_t r = 0; r < out.rows; ++r) {
    run.rows.emplace_back(out.logits.begin() + r * V, out.logits.begin() + (r + 1) * V);
    last = run.rows.back();
  }
  for (int s = 0; s < steps; ++s) {
    const int32_t tok = argmax(last);  // rank 0's choice (the others have no logits)
    int32_t shared = tok;
    world().broadcast(&shared, sizeof shared, 0);  // the sampled token reaches every rank
    run.tokens.push_back(shared);
    const std::vector<int32_t> one = {shared};
    fwd(one, LogitsMode::kLast, out, &run.traces[static_cast<size_t>(s) + 1]);
    last = out.logits;
    run.rows.push_back(out.logits);
  }
  return run;
}

double row_sigma(const std::vector<float>& row) {
  double mean = 0, sq = 0;
  for (float v : row) mean += v;
  mean /= static_cast<double>(row.size());
  for (float v : row) sq += (v - mean) * (v - mean);
  return std::sqrt(sq / static_cast<double>(row.size()));
}

std::ostringstream& report() {
  static std::ostringstream os;
  return os;
}

void flush_report() {
  if (world().rank() != 0) return;
  std::ofstream(std::string(QCODER_BINARY_DIR) + "/mpi-report-np" + std::to_string(world().size()) +
                ".txt")
      << report().str();
}


struct Case {
  std::string fixture;
  ParallelMode mode;
};

class ShardedEqualsUnsharded : public ::testing::TestWithParam<Case> {};

TEST_P(ShardedEqualsUnsharded, GreedyTokensAndLogits) {
  const Case& tc = GetParam();
  const std::string dir = fixture_dir(tc.fixture);
  const ModelConfig c = load_model_config(dir);
  if ((tc.mode == ParallelMode::kPipeline && c.num_hidden_layers < world().size()) ||
      (tc.mode == ParallelMode::kCombined && world().size() < 3))
    GTEST_SKIP() << "plan needs more layers or ranks";
  const ShardPlan plan = plan_for(c, tc.mode);
  const int64_t V = c.vocab_size;
  const auto ids = prompt(23, V, 11);
  const int steps = 12;

  // Reference: the unsharded model, on every rank (the fixtures are small).
  auto ref_model = Model::load(dir);
  ThreadPool pool(1);
  // Float32 KV on both sides: the gate is about the sharded arithmetic. (In bf16 the last-bit
  // differences also tip some K/V elements across a rounding boundary: measured up to 1.7e-3
  // sigma, docs/DISTRIBUTED.md.)
  const KvFormat f32{KvDtype::kF32};
  KvCache ref_cache(ref_model->config(), 64, f32);
  const Generation want = generate(
      ids, steps, V,
      [&](const std::vector<int32_t>& t, LogitsMode m, SequenceOutput& o, ForwardTrace* tr) {
        SequenceInput in{t, &ref_cache, m};
        ref_model->forward({&in, 1}, {&o, 1}, pool, tr);
      });

  auto model = ParallelModel::load(dir, plan, world());
  KvCache cache = model->new_cache(64, f32);
  const Generation got = generate(
      ids, steps, V,
      [&](const std::vector<int32_t>& t, LogitsMode m, SequenceOutput& o, ForwardTrace* tr) {
        SequenceInput in{t, &cache, m};
        model->forward({&in, 1}, {&o, 1}, pool, tr);
      });

  // Routing is identical on every rank of a stage (the all-reduce gives them the same bits).
  const RankShard& sh = model->shard();
  uint64_t hash = 1469598103934665603ull;
  for (const ForwardTrace& t : got.traces)
    for (int64_t l = sh.layer_begin; l < sh.layer_end; ++l)
      for (int32_t e : t.routes[static_cast<size_t>(l)])
        hash = (hash ^ static_cast<uint32_t>(e)) * 1099511628211ull;
  std::vector<uint64_t> hashes(static_cast<size_t>(world().size()));
  world().all_gather(&hash, sizeof hash, hashes.data());
  const PipelineStage& stage = plan.stages[static_cast<size_t>(sh.stage)];
  for (int m = 0; m < stage.ranks; ++m)
    EXPECT_EQ(hashes[static_cast<size_t>(stage.first_rank + m)], hash)
        << "ranks " << stage.first_rank + m << " and " << world().rank() << " routed differently";
  // Against the unsharded run, counted once per stage (by its first rank): flipped[row] is
  // the number of layers whose experts differ for that row; summed onto rank 0.
  const int64_t k = c.num_experts_per_tok;
  std::vector<float> flipped(want.rows.size(), 0.0f);
  float pairs = 0;
  size_t row = 0;
  for (size_t t = 0; t < want.traces.size() && sh.member == 0; ++t) {
    const int64_t n = t == 0 ? static_cast<int64_t>(ids.size()) : 1;
    for (int64_t l = sh.layer_begin; l < sh.layer_end; ++l) {
      const auto& g = got.traces[t].routes[static_cast<size_t>(l)];
      const auto& w = want.traces[t].routes[static_cast<size_t>(l)];
      ASSERT_EQ(g.size(), w.size());
      for (int64_t r = 0; r < n; ++r) {
        pairs += 1;
        if (!std::equal(g.begin() + r * k, g.begin() + (r + 1) * k, w.begin() + r * k))
          flipped[row + r] += 1;
      }
    }
    row += static_cast<size_t>(n);
  }
  world().all_reduce_sum(flipped.data(), flipped.size());
  world().all_reduce_sum(&pairs, 1);
  if (world().rank() != 0) {
    for (const auto& r : got.rows) EXPECT_TRUE(r.empty());
    return;
  }
  EXPECT_EQ(got.tokens, want.tokens);
  ASSERT_EQ(got.rows.size(), want.rows.size());
  double worst = 0, worst_abs = 0, worst_flipped = 0;
  float flips = 0;
  for (size_t r = 0; r < want.rows.size(); ++r) {
    ASSERT_EQ(got.rows[r].size(), static_cast<size_t>(V)) << "row " << r;
    const double sigma = row_sigma(want.rows[r]);
    double m = 0;
    for (size_t i = 0; i < want.rows[r].size(); ++i)
      m = std::max(m, std::abs(static_cast<double>(got.rows[r][i]) - want.rows[r][i]));
    flips += flipped[r];
    if (flipped[r] > 0) {
      worst_flipped = std::max(worst_flipped, m / sigma);
      continue;
    }
    worst_abs = std::max(worst_abs, m);
    worst = std::max(worst, m / sigma);
  }
  EXPECT_LE(worst, kLogitTolerance);
  EXPECT_LE(worst_flipped, kFlippedRowTolerance);
  EXPECT_LE(flips, kMaxFlipShare * pairs)
      << flips << " of " << pairs << " (row, layer) routes differ";
  if (tc.mode == ParallelMode::kPipeline) {
    EXPECT_EQ(worst, 0.0) << "a pipeline does not change any sum: its logits are bitwise equal";
  }
  report() << "np " << world().size() << "  " << tc.fixture << "  " << parallel_mode_name(tc.mode)
           << "  rows " << want.rows.size() << "  max |diff| " << worst_abs << " = " << worst
           << " sigma  greedy " << (got.tokens == want.tokens ? "equal" : "DIFFERENT")
           << "  route flips " << flips << "/" << pairs;
  if (flips > 0) report() << " (flipped rows: max " << worst_flipped << " sigma)";
  report() << "\n";
  flush_report();
}

std::vector<Case> cases() {
  std::vector<Case> out;
  // q4_g64/mixed/tied: 3 layers, 8 experts; shape480: 16 experts, 12 query heads per KV head,
  // head_dim 128; dense: 4 layers with dense ones; q6_g128: o_proj groups of 128 columns;
  // nvfp4/mxfp4/q3_g32/bf16: other formats of the column slice.
  for (const char* f : {"q4_g64", "shape480", "mixed", "tied", "dense", "q6_g128", "nvfp4", "mxfp4",
                        "q3_g32", "bf16"})
    for (ParallelMode m : {ParallelMode::kPipeline, ParallelMode::kExpert, ParallelMode::kCombined})
      out.push_back({f, m});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ShardedEqualsUnsharded, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return i.param.fixture + "_" + parallel_mode_name(i.param.mode);
                         });

// Several sequences in one forward run as micro-batches through the pipeline; each row is
// what that sequence gives alone.
TEST(ParallelForward, MicroBatchesGiveTheSameRows) {
  const std::string dir = fixture_dir("q4_g64");
  const ModelConfig c = load_model_config(dir);
  for (ParallelMode mode : {ParallelMode::kPipeline, ParallelMode::kExpert}) {
    if (mode == ParallelMode::kPipeline && c.num_hidden_layers < world().size()) continue;
    auto model = ParallelModel::load(dir, plan_for(c, mode), world());
    ThreadPool pool(1);
    const std::vector<std::vector<int32_t>> seqs = {
        prompt(5, c.vocab_size, 1), prompt(1, c.vocab_size, 2), prompt(9, c.vocab_size, 3),
        prompt(4, c.vocab_size, 4)};
    std::vector<std::vector<float>> alone;
    for (const auto& s : seqs) {
      KvCache kc = model->new_cache(32);
      SequenceInput in{s, &kc, LogitsMode::kAll};
      SequenceOutput o;
      model->forward({&in, 1}, {&o, 1}, pool);
      alone.push_back(o.logits);
    }
    std::vector<KvCache> caches;
    for (size_t i = 0; i < seqs.size(); ++i) caches.push_back(model->new_cache(32));
    std::vector<SequenceInput> batch;
    for (size_t i = 0; i < seqs.size(); ++i)
      batch.push_back({seqs[i], &caches[i], LogitsMode::kAll});
    std::vector<SequenceOutput> out(seqs.size());
    model->forward(batch, out, pool);
    for (size_t i = 0; i < seqs.size(); ++i)
      EXPECT_EQ(out[i].logits, alone[i]) << parallel_mode_name(mode) << " " << i;
  }
}

// The leader/follower protocol that generate (and serve) use.
TEST(ParallelRunner, FollowersMirrorTheLeader) {
  const std::string dir = fixture_dir("mixed");
  const ModelConfig c = load_model_config(dir);
  const ParallelMode mode =
      c.num_hidden_layers >= world().size() ? ParallelMode::kPipeline : ParallelMode::kExpert;
  auto model = ParallelModel::load(dir, plan_for(c, mode), world());
  ThreadPool pool(1);
  ParallelRunner runner(*model, world(), pool);
  if (!runner.leader()) {
    runner.follow();
    return;
  }
  auto ref = Model::load(dir);
  const auto a = prompt(7, c.vocab_size, 5), b = prompt(3, c.vocab_size, 6);
  const int64_t sa = runner.open(32), sb = runner.open(32);
  std::vector<ParallelRunner::Step> steps = {{sa, a, LogitsMode::kLast}, {sb, b, LogitsMode::kAll}};
  std::vector<SequenceOutput> out(2);
  runner.forward(steps, out);
  KvCache ra = ref->new_cache(32), rb = ref->new_cache(32);
  std::vector<SequenceInput> rin = {{a, &ra, LogitsMode::kLast}, {b, &rb, LogitsMode::kAll}};
  std::vector<SequenceOutput> rout(2);
  ref->forward(rin, rout, pool);
  EXPECT_EQ(out[0].rows, 1);
  EXPECT_EQ(out[1].rows, 3);
  EXPECT_EQ(out[0].logits, rout[0].logits) << "a pipeline over these fixtures is bitwise";
  // A refused batch is refused on the leader alone; the job goes on.
  const std::vector<int32_t> bad = {static_cast<int32_t>(c.vocab_size)};
  ParallelRunner::Step bad_step{sa, bad, LogitsMode::kLast};
  SequenceOutput bad_out;
  EXPECT_THROW(runner.forward({&bad_step, 1}, {&bad_out, 1}), Error);
  // Truncate and redo: the same logits as the first time.
  runner.truncate(sa, 0);
  EXPECT_EQ(runner.length(sa), 0);
  runner.forward({steps.data(), 1}, {out.data(), 1});
  EXPECT_EQ(out[0].logits, rout[0].logits);
  runner.close(sa);
  runner.close(sb);
  EXPECT_THROW(runner.length(sa), Error);
  runner.stop();
}

}  // namespace
}  // namespace qcoder
