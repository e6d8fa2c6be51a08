// The parts of multi-machine execution that need no second process: matrix slices, weight
// selections, shard plans, per-layer bytes, the decode estimate, the single-process
// communicator, and a one-rank ParallelModel being Model::forward bit for bit.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "core/error.h"
#include "kernels/reference/quant_ref.h"
#include "model/cluster_estimate.h"
#include "model/model.h"
#include "model/parallel_model.h"
#include "model/parallel_runner.h"
#include "model/shard_plan.h"

namespace qcoder {
namespace {

std::string fixture_dir(const std::string& name) {
  return std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}
const std::string k480 =
    std::string(QCODER_SOURCE_DIR) + "/tests/fixtures/configs/qwen3-coder-480b-a35b-4bit";

const char* const kFormats[] = {"q2_g64", "q3_g32", "q4_g64", "q5_g64", "q6_g128", "q8_g64",
                                "mxfp4",  "mxfp8",  "nvfp4",  "bf16",   "f32",     "mixed"};

Cluster one_machine(int ranks, uint64_t mem = 0) {
  Cluster c;
  c.node_of_rank.assign(static_cast<size_t>(ranks), 0);
  c.mem_per_rank.assign(static_cast<size_t>(ranks), mem);
  return c;
}

TEST(MatrixSlices, DequantizeLikeTheWholeMatrix) {
  for (const char* f : kFormats) {
    auto model = Model::load(fixture_dir(f));
    const QMatrix& o = model->weights().layers[0].o_proj;  // [hidden, heads * head_dim]
    const int64_t g = o.spec.quantized() ? o.spec.group_size : 16;
    std::vector<float> full(static_cast<size_t>(o.cols)), part(static_cast<size_t>(o.cols));
    for (int64_t begin = 0; begin < o.cols; begin += g)
      for (int64_t end = begin + g; end <= o.cols; end += g) {
        const QMatrix s = row_slice(col_slice(o, begin, end), 3, 9);
        ASSERT_NO_THROW(validate_qmatrix(s, f));
        for (int64_t r = 0; r < s.rows; ++r) {
          ref::dequantize_row(o, r + 3, full.data());
          ref::dequantize_row(s, r, part.data());
          ASSERT_EQ(
              std::memcmp(part.data(), full.data() + begin, static_cast<size_t>(end - begin) * 4),
              0)
              << f << " cols [" << begin << ", " << end << ") row " << r;
        }
      }
    if (o.spec.quantized()) {
      EXPECT_THROW(col_slice(o, g / 2, o.cols), Error) << f;
      EXPECT_THROW(col_slice(o, 0, o.cols + g), Error) << f;
    }
  }
}

TEST(WeightSelection, BindsOnlyTheShard) {
  const std::string dir = fixture_dir("q4_g64");
  const ModelConfig c = load_model_config(dir);
  auto store = WeightStore::open_dir(dir);
  const ModelWeights all = bind_weights(c, *store);
  WeightSelection sel;
  sel.layer_begin = 1;
  sel.layer_end = 2;
  sel.embed = false;
  sel.head = false;
  sel.kv_head_begin = 1;
  sel.kv_head_end = 2;
  sel.expert_range = [](int64_t) { return std::pair<int64_t, int64_t>{2, 5}; };
  const ModelWeights w = bind_weights(c, *store, sel);
  EXPECT_EQ(w.first_layer, 1);
  ASSERT_EQ(w.layers.size(), 1u);
  EXPECT_EQ(w.embed.data, nullptr);
  EXPECT_EQ(w.lm_head.data, nullptr);
  EXPECT_TRUE(w.final_norm.empty());
  const LayerWeights& L = w.layers[0];
  const int64_t hd = c.head_dim, group = c.num_attention_heads / c.num_key_value_heads;
  EXPECT_EQ(L.q_proj.rows, group * hd);
  EXPECT_EQ(L.k_proj.rows, hd);
  EXPECT_EQ(L.o_proj.cols, group * hd);
  EXPECT_EQ(L.o_proj.rows, c.hidden_size);
  EXPECT_EQ(L.k_proj.data, all.layers[1].k_proj.data + hd * all.layers[1].k_proj.row_bytes);
  for (int64_t e = 0; e < c.num_experts; ++e)
    EXPECT_EQ(L.down_proj.experts[static_cast<size_t>(e)].rows, e >= 2 && e < 5 ? c.hidden_size : 0)
        << e;
  EXPECT_LT(w.bytes, all.bytes / 4);
  // The full selection is the plain binding.
  const ModelWeights again = bind_weights(c, *store, WeightSelection{});
  EXPECT_EQ(again.bytes, all.bytes);
  EXPECT_EQ(again.tensor_count, all.tensor_count);
}

TEST(ModelBytes, FromTheStoreMatchesTheConfig) {
  for (const char* f : {"q4_g64", "mixed", "tied", "dense", "shape480"}) {
    const std::string dir = fixture_dir(f);
    const ModelConfig c = load_model_config(dir);
    auto store = WeightStore::open_dir(dir);
    const ModelBytes from_store = model_bytes_from_store(c, *store);
    const ModelBytes from_config = model_bytes_from_config(c);
    EXPECT_EQ(from_store.total(), store->total_bytes()) << f;
    EXPECT_EQ(from_config.total(), config_weight_bytes(c)) << f;
    ASSERT_EQ(from_store.layers.size(), from_config.layers.size());
    for (size_t l = 0; l < from_store.layers.size(); ++l) {
      EXPECT_EQ(from_store.layers[l].attention, from_config.layers[l].attention) << f << " " << l;
      EXPECT_EQ(from_store.layers[l].experts, from_config.layers[l].experts) << f << " " << l;
      EXPECT_EQ(from_store.layers[l].dense_mlp, from_config.layers[l].dense_mlp) << f << " " << l;
      EXPECT_EQ(from_store.layers[l].router, from_config.layers[l].router) << f << " " << l;
    }
  }
  const ModelBytes b = model_bytes_from_config(load_model_config(k480));
  EXPECT_EQ(b.total(), 270088244224ull);
  uint64_t active = b.embed_row(151936) + b.head + b.final_norm;
  for (const LayerBytes& l : b.layers) active += l.active(8, 160);
  EXPECT_NEAR(static_cast<double>(active) / 1e9, 19.4, 0.1);  // spec/targets.md: 19.4 GB per token
}

TEST(ShardPlans, PipelineIsBalancedByBytes) {
  const ModelConfig c = load_model_config(k480);
  const ModelBytes b = model_bytes_from_config(c);
  for (int P : {2, 3, 4, 7, 8}) {
    PlanRequest req;
    req.mode = ParallelMode::kPipeline;
    const ShardPlan plan = make_shard_plan(c, b, one_machine(P), req);
    ASSERT_EQ(plan.stages.size(), static_cast<size_t>(P));
    EXPECT_EQ(plan.stages.front().layer_begin, 0);
    EXPECT_EQ(plan.stages.back().layer_end, 62);
    int64_t lo = 62, hi = 0;
    for (size_t s = 0; s < plan.stages.size(); ++s) {
      if (s) {
        EXPECT_EQ(plan.stages[s].layer_begin, plan.stages[s - 1].layer_end);
      }
      const int64_t n = plan.stages[s].layer_end - plan.stages[s].layer_begin;
      lo = std::min(lo, n);
      hi = std::max(hi, n);
    }
    EXPECT_LE(hi - lo, 1) << P << " stages of equal layers differ by one layer at most";
  }
  PlanRequest bad;
  bad.mode = ParallelMode::kPipeline;
  EXPECT_THROW(make_shard_plan(c, b, one_machine(63), bad), Error);
  bad.layers_per_stage = {30, 30};
  EXPECT_THROW(make_shard_plan(c, b, one_machine(2), bad), Error);
  bad.layers_per_stage = {40, 22};
  const ShardPlan explicit_plan = make_shard_plan(c, b, one_machine(2), bad);
  EXPECT_EQ(explicit_plan.stages[0].layer_end, 40);
}

TEST(ShardPlans, AutoFollowsMemoryAndMachines) {
  const ModelConfig c = load_model_config(k480);
  const ModelBytes b = model_bytes_from_config(c);
  PlanRequest req;
  req.ctx = 4096;
  EXPECT_EQ(make_shard_plan(c, b, one_machine(4, 600'000'000'000ull), req).mode,
            ParallelMode::kExpert);
  EXPECT_EQ(make_shard_plan(c, b, one_machine(4, 100'000'000'000ull), req).mode,
            ParallelMode::kPipeline);
  Cluster two_nodes;
  two_nodes.node_of_rank = {0, 0, 1, 1};
  two_nodes.mem_per_rank.assign(4, 600'000'000'000ull);
  const ShardPlan p = make_shard_plan(c, b, two_nodes, req);
  EXPECT_EQ(p.mode, ParallelMode::kCombined);
  ASSERT_EQ(p.stages.size(), 2u);
  EXPECT_EQ(p.stages[1].first_rank, 2);
  EXPECT_EQ(p.stages[1].ranks, 2);
  EXPECT_NE(describe_plan(p, c).find("stage 1: ranks 2-3"), std::string::npos)
      << describe_plan(p, c);
  EXPECT_EQ(make_shard_plan(c, b, one_machine(1), req).mode, ParallelMode::kSingle);
}

TEST(ShardPlans, ExpertsAndHeadsArePartitioned) {
  const ModelConfig c = load_model_config(fixture_dir("q4_g64"));  // 8 experts, 2 KV heads
  PlanRequest req;
  req.mode = ParallelMode::kExpert;
  const ShardPlan plan = make_shard_plan(c, model_bytes_from_config(c), one_machine(3), req);
  EXPECT_TRUE(plan.split_attention);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    std::vector<int> owners(static_cast<size_t>(c.num_experts), 0);
    int64_t heads = 0;
    for (int r = 0; r < 3; ++r) {
      const RankShard s = rank_shard(plan, c, r);
      const auto [b, e] = s.expert_range(l);
      for (int64_t x = b; x < e; ++x) ++owners[static_cast<size_t>(x)];
      heads += s.kv_head_end - s.kv_head_begin;
      EXPECT_EQ(s.head, r == 0);
      EXPECT_TRUE(s.embed);
    }
    EXPECT_EQ(heads, c.num_key_value_heads);
    for (int o : owners) EXPECT_EQ(o, 1) << "layer " << l;
  }
  // The rank with the extra expert moves with the layer.
  const RankShard first = rank_shard(plan, c, 0);
  const auto count = [&](int64_t layer) {
    return first.expert_range(layer).second - first.expert_range(layer).first;
  };
  EXPECT_EQ(count(0), 3);  // 8 experts over 3 ranks: 3/3/2, then 3/2/3, then 2/3/3
  EXPECT_EQ(count(2), 2);
  const RankShard last = rank_shard(plan, c, 2);
  EXPECT_EQ(last.kv_head_end - last.kv_head_begin, 0);  // 2 KV heads over 3 ranks
  EXPECT_EQ(last.rank_config(c).num_attention_heads, 0);
}

TEST(ShardPlans, FootprintsAddUp) {
  const ModelConfig c = load_model_config(k480);
  const ModelBytes b = model_bytes_from_config(c);
  for (ParallelMode m : {ParallelMode::kPipeline, ParallelMode::kExpert}) {
    PlanRequest req;
    req.mode = m;
    const ShardPlan plan = make_shard_plan(c, b, one_machine(4), req);
    uint64_t weights = 0, kv = 0;
    for (int r = 0; r < 4; ++r) {
      const RankFootprint f = rank_footprint(c, b, rank_shard(plan, c, r), 1000, 16);
      weights += f.weights;
      kv += f.kv;
    }
    EXPECT_EQ(kv, kv_bytes_per_token(c, 16) * 1000) << parallel_mode_name(m);
    // Pipeline: everything once. Expert: norms, routers and the embedding on every rank.
    EXPECT_GE(weights, b.total() - 64);
    EXPECT_LE(static_cast<double>(weights),
              static_cast<double>(b.total()) * (m == ParallelMode::kPipeline ? 1.0 : 1.01));
  }
}

TEST(ClusterEstimate, RooflineArithmetic) {
  EXPECT_DOUBLE_EQ(expected_max_expert_load(160, 8, 1), 8.0);
  EXPECT_NEAR(expected_max_expert_load(8, 8, 2), 4.0, 1e-12);  // every expert chosen
  EXPECT_NEAR(expected_max_expert_load(2, 1, 2), 1.0, 1e-12);
  EXPECT_NEAR(expected_max_expert_load(4, 2, 2), 1.0 + 2.0 / 6.0,
              1e-12);  // both in one half: 2 of 6 pairs
  EXPECT_NEAR(expected_max_expert_load(160, 8, 8), 2.543373121199586,
              1e-9);  // exact, by Python's math.comb
  const ModelConfig c = load_model_config(k480);
  const ModelBytes b = model_bytes_from_config(c);
  PlanRequest req;
  req.mode = ParallelMode::kPipeline;
  ClusterSpec spec;
  const ShardPlan one = make_shard_plan(c, b, one_machine(1), req);
  const DecodeEstimate d1 = estimate_decode(c, b, one, {0}, spec, 0, 16);
  EXPECT_NEAR(d1.compute_seconds, 19.43e9 / spec.mem_bandwidth, 0.01);
  EXPECT_EQ(d1.comm_seconds, 0.0);
  Cluster two;
  two.node_of_rank = {0, 1};
  two.mem_per_rank = {0, 0};
  const ShardPlan pipe = make_shard_plan(c, b, two, req);
  const DecodeEstimate dp = estimate_decode(c, b, pipe, two.node_of_rank, spec, 0, 16);
  EXPECT_NEAR(dp.compute_seconds, d1.compute_seconds,
              1e-3);  // the same bytes, one stage after the other
  EXPECT_NEAR(dp.pipelined_tokens_per_second, 2.0 * d1.tokens_per_second(),
              0.2 * d1.tokens_per_second());
  req.mode = ParallelMode::kExpert;
  const DecodeEstimate de =
      estimate_decode(c, b, make_shard_plan(c, b, two, req), two.node_of_rank, spec, 0, 16);
  EXPECT_LT(de.compute_seconds, 0.7 * d1.compute_seconds);
  EXPECT_EQ(de.messages, 62 * 2 + 1);  // two all-reduces per layer + the step command
}

TEST(LocalCommunicator, IsRankZeroOfOne) {
  auto c = dist::make_local_communicator();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  float v[2] = {1.5f, -2.0f};
  c->all_reduce_sum(v, 2);
  EXPECT_EQ(v[0], 1.5f);
  int x = 7, y = 0;
  c->all_gather(&x, sizeof x, &y);
  EXPECT_EQ(y, 7);
  c->broadcast(&x, sizeof x, 0);
  EXPECT_THROW(c->send(&x, sizeof x, 1, 0), Error);
  EXPECT_EQ(dist::gather_topology(*c).nodes(), 1);
  EXPECT_FALSE(dist::launched_by_mpi());
  EXPECT_EQ(dist::make_world_communicator()->backend(), "local");
}

// A one-rank ParallelModel runs the same operations as Model::forward: bitwise equal logits,
// also for batches and chunked prompts, and through the runner.
TEST(ParallelModelOneRank, IsModelForwardBitForBit) {
  auto comm = dist::make_local_communicator();
  for (const char* f : {"q4_g64", "shape480", "dense", "tied", "mixed"}) {
    const std::string dir = fixture_dir(f);
    auto ref = Model::load(dir);
    const ModelConfig& c = ref->config();
    PlanRequest req;
    auto pm = ParallelModel::load(
        dir, make_shard_plan(c, model_bytes_from_config(c), one_machine(1), req), *comm);
    ThreadPool pool(2);
    std::vector<int32_t> a(19), b(4);
    std::iota(a.begin(), a.end(), 3);
    std::iota(b.begin(), b.end(), 100);
    KvCache ra = ref->new_cache(64), rb = ref->new_cache(64), pa = pm->new_cache(64),
            pb = pm->new_cache(64);
    std::vector<SequenceInput> rin = {{a, &ra, LogitsMode::kAll}, {b, &rb, LogitsMode::kLast}};
    std::vector<SequenceInput> pin = {{a, &pa, LogitsMode::kAll}, {b, &pb, LogitsMode::kLast}};
    std::vector<SequenceOutput> rout(2), pout(2);
    ForwardTrace rt, pt;
    ref->forward(rin, rout, pool, &rt);
    pm->forward(pin, pout, pool, &pt);
    EXPECT_EQ(pout[0].logits, rout[0].logits) << f;
    EXPECT_EQ(pout[1].logits, rout[1].logits) << f;
    EXPECT_EQ(pt.routes, rt.routes) << f;
    ParallelRunner runner(*pm, *comm, pool);
    const int64_t slot = runner.open(64);
    const ParallelRunner::Step step{slot, a, LogitsMode::kAll};
    SequenceOutput out;
    runner.forward({&step, 1}, {&out, 1});
    EXPECT_EQ(out.logits, rout[0].logits) << f;
    const std::vector<int32_t> bad = {static_cast<int32_t>(c.vocab_size)};
    const ParallelRunner::Step bad_step{slot, bad, LogitsMode::kLast};
    EXPECT_THROW(runner.forward({&bad_step, 1}, {&out, 1}), Error);
    runner.stop();
  }
}

}  // namespace
}  // namespace qcoder
