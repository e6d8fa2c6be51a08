#include "model/shard_plan.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"

namespace qcoder {
namespace {

std::string gb_text(uint64_t bytes) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  os << static_cast<double>(bytes) / 1e9 << " GB";
  return os.str();
}

// Would the head boundaries of every split stage fall on o_proj's quantization groups?
bool attention_split_aligned(const ModelConfig& c, const ShardPlan& plan) {
  if (c.num_key_value_heads <= 0) return false;
  const int64_t group = c.num_attention_heads / c.num_key_value_heads;
  for (const PipelineStage& st : plan.stages) {
    if (st.ranks <= 1) continue;
    for (int64_t l = st.layer_begin; l < st.layer_end; ++l) {
      const QuantSpec spec =
          c.quantization.spec_for("model.layers." + std::to_string(l) + ".self_attn.o_proj", true);
      if (!spec.quantized()) continue;
      for (int m = 0; m < st.ranks; ++m) {
        const auto [b, e] = even_range(c.num_key_value_heads, st.ranks, m);
        if ((b * group * c.head_dim) % spec.group_size != 0 ||
            (e * group * c.head_dim) % spec.group_size != 0)
          return false;
      }
    }
  }
  return true;
}

// Ranks of each node, when every node's ranks are consecutive (else empty).
std::vector<int> contiguous_node_sizes(const Cluster& cl) {
  std::vector<int> sizes;
  std::set<int> seen;
  for (int r = 0; r < cl.ranks(); ++r) {
    const int n = cl.node_of_rank[static_cast<size_t>(r)];
    if (r > 0 && n == cl.node_of_rank[static_cast<size_t>(r - 1)]) {
      ++sizes.back();
      continue;
    }
    if (!seen.insert(n).second) return {};
    sizes.push_back(1);
  }
  return sizes;
}

}  // namespace

ParallelMode parse_parallel_mode(const std::string& t) {
  if (t == "pipeline") return ParallelMode::kPipeline;
  if (t == "expert") return ParallelMode::kExpert;
  if (t == "combined") return ParallelMode::kCombined;
  if (t == "auto") return ParallelMode::kAuto;
  if (t == "single") return ParallelMode::kSingle;
  throw Error("--parallel must be pipeline, expert, combined or auto, got \"" + t + "\"");
}

const char* parallel_mode_name(ParallelMode m) {
  switch (m) {
    case ParallelMode::kSingle:
      return "single";
    case ParallelMode::kPipeline:
      return "pipeline";
    case ParallelMode::kExpert:
      return "expert";
    case ParallelMode::kCombined:
      return "combined";
    case ParallelMode::kAuto:
      return "auto";
  }
  return "?";
}

std::pair<int64_t, int64_t> even_range(int64_t n, int64_t parts, int64_t index) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = index * base + std::min(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

int ShardPlan::world_size() const {
  int n = 0;
  for (const PipelineStage& s : stages) n += s.ranks;
  return n;
}

int ShardPlan::stage_of_rank(int rank) const {
  for (size_t s = 0; s < stages.size(); ++s)
    if (rank >= stages[s].first_rank && rank < stages[s].first_rank + stages[s].ranks)
      return static_cast<int>(s);
  throw Error("rank " + std::to_string(rank) + " is not in the plan (" +
              std::to_string(world_size()) + " ranks)");
}

int Cluster::nodes() const {
  return static_cast<int>(std::set<int>(node_of_rank.begin(), node_of_rank.end()).size());
}

std::vector<int64_t> balance_layers(const ModelBytes& mb, const std::vector<int>& ranks_per_stage) {
  const int64_t L = static_cast<int64_t>(mb.layers.size());
  const int64_t S = static_cast<int64_t>(ranks_per_stage.size());
  if (S < 1 || S > L)
    throw Error("cannot split " + std::to_string(L) + " layers into " + std::to_string(S) +
                " pipeline stages (each stage needs at least one layer)");
  std::vector<double> prefix(static_cast<size_t>(L) + 1, 0.0);
  for (int64_t l = 0; l < L; ++l)
    prefix[l + 1] = prefix[l] + static_cast<double>(mb.layers[l].total());
  const auto cost = [&](int64_t s, int64_t i, int64_t j) {  // stage s holds layers [i, j)
    double b = prefix[j] - prefix[i];
    if (s == 0) b += static_cast<double>(mb.embed);
    if (s == S - 1) b += static_cast<double>(mb.head_matrix() + mb.final_norm);
    return b / ranks_per_stage[static_cast<size_t>(s)];
  };
  const double inf = std::numeric_limits<double>::infinity();
  // best[s][j]: the smallest possible largest cost when stages 0..s hold layers [0, j).
  std::vector<std::vector<double>> best(static_cast<size_t>(S),
                                        std::vector<double>(static_cast<size_t>(L) + 1, inf));
  std::vector<std::vector<int64_t>> cut(static_cast<size_t>(S),
                                        std::vector<int64_t>(static_cast<size_t>(L) + 1, 0));
  for (int64_t j = 1; j <= L; ++j) best[0][j] = cost(0, 0, j);
  for (int64_t s = 1; s < S; ++s)
    for (int64_t j = s + 1; j <= L; ++j)
      for (int64_t i = s; i < j; ++i) {
        const double v = std::max(best[s - 1][i], cost(s, i, j));
        if (v < best[s][j]) {
          best[s][j] = v;
          cut[s][j] = i;
        }
      }
  std::vector<int64_t> counts(static_cast<size_t>(S));
  int64_t j = L;
  for (int64_t s = S - 1; s >= 0; --s) {
    const int64_t i = s == 0 ? 0 : cut[s][j];
    counts[static_cast<size_t>(s)] = j - i;
    j = i;
  }
  return counts;
}

ShardPlan make_shard_plan(const ModelConfig& c, const ModelBytes& mb, const Cluster& cl,
                          const PlanRequest& req) {
  const int P = cl.ranks();
  const int64_t L = c.num_hidden_layers;
  if (P < 1) throw Error("a plan needs at least one rank");
  ShardPlan plan;
  ParallelMode mode = req.mode;
  std::vector<int> ranks_per_stage;
  const std::vector<int> node_sizes = contiguous_node_sizes(cl);
  if (P == 1) {
    mode = ParallelMode::kSingle;
    plan.reason = "one rank";
  } else if (mode == ParallelMode::kAuto) {
    const uint64_t need =
        mb.total() +
        kv_bytes_per_token(c, req.kv_bits) * static_cast<uint64_t>(std::max<int64_t>(req.ctx, 0)) +
        activation_bytes(c, req.ctx);
    uint64_t budget = 0;
    for (uint64_t m : cl.mem_per_rank)
      if (m > 0) budget = budget == 0 ? m : std::min(budget, m);
    const int nodes = cl.nodes();
    if (nodes > 1 && !node_sizes.empty() && static_cast<int>(node_sizes.size()) < P &&
        static_cast<int64_t>(node_sizes.size()) <= L) {
      mode = ParallelMode::kCombined;
      ranks_per_stage = node_sizes;
      plan.reason =
          std::to_string(nodes) +
          " machines: pipeline across them, expert/tensor parallel among the ranks of each";
    } else if (nodes > 1 || (budget > 0 && need > budget)) {
      mode = P <= L ? ParallelMode::kPipeline : ParallelMode::kCombined;
      plan.reason = nodes > 1 ? std::to_string(nodes) + " machines with one rank each: pipeline"
                              : "the model needs " + gb_text(need) + " and one rank may use " +
                                    gb_text(budget) + ": pipeline, each rank holding its layers";
    } else {
      mode = ParallelMode::kExpert;
      plan.reason = budget > 0 ? "the model needs " + gb_text(need) + ", within one rank's " +
                                     gb_text(budget) + ": expert/tensor parallel on one machine"
                               : "memory unknown: expert/tensor parallel on one machine";
    }
  } else {
    plan.reason = "requested";
  }

  switch (mode) {
    case ParallelMode::kSingle:
      if (P != 1) throw Error("a single-process plan cannot use " + std::to_string(P) + " ranks");
      ranks_per_stage = {1};
      break;
    case ParallelMode::kPipeline:
      if (P > L)
        throw Error("pipeline over " + std::to_string(P) + " ranks needs at least " +
                    std::to_string(P) + " layers; the model has " + std::to_string(L) +
                    " (use --parallel combined)");
      ranks_per_stage.assign(static_cast<size_t>(P), 1);
      break;
    case ParallelMode::kExpert:
      ranks_per_stage = {P};
      break;
    case ParallelMode::kCombined: {
      if (!ranks_per_stage.empty()) break;  // auto: one stage per node
      int S =
          req.stages > 0
              ? req.stages
              : (cl.nodes() > 1 && !node_sizes.empty() ? static_cast<int>(node_sizes.size()) : 2);
      if (req.stages <= 0 && mode == ParallelMode::kCombined && P > L) S = static_cast<int>(L);
      if (S > P || S > L)
        throw Error("combined plan: " + std::to_string(S) + " stages need at least " +
                    std::to_string(S) + " ranks and layers (have " + std::to_string(P) +
                    " ranks, " + std::to_string(L) + " layers)");
      if (req.stages <= 0 && static_cast<int>(node_sizes.size()) == S) {
        ranks_per_stage = node_sizes;
      } else {
        for (int s = 0; s < S; ++s)
          ranks_per_stage.push_back(
              static_cast<int>(even_range(P, S, s).second - even_range(P, S, s).first));
      }
      break;
    }
    case ParallelMode::kAuto:
      throw Error("internal: auto plan not resolved");
  }
  plan.mode = mode;

  std::vector<int64_t> counts = req.layers_per_stage;
  if (counts.empty()) {
    counts = balance_layers(mb, ranks_per_stage);
  } else {
    if (counts.size() != ranks_per_stage.size())
      throw Error("--pipeline-layers gives " + std::to_string(counts.size()) +
                  " stages, the plan has " + std::to_string(ranks_per_stage.size()));
    int64_t sum = 0;
    for (int64_t n : counts) {
      if (n < 1) throw Error("--pipeline-layers: every stage needs at least one layer");
      sum += n;
    }
    if (sum != L)
      throw Error("--pipeline-layers adds up to " + std::to_string(sum) +
                  " layers; the model has " + std::to_string(L));
  }
  int rank = 0;
  int64_t layer = 0;
  for (size_t s = 0; s < counts.size(); ++s) {
    PipelineStage st;
    st.layer_begin = layer;
    st.layer_end = layer + counts[s];
    st.first_rank = rank;
    st.ranks = ranks_per_stage[s];
    plan.stages.push_back(st);
    layer = st.layer_end;
    rank += st.ranks;
  }
  plan.split_attention = attention_split_aligned(c, plan);
  return plan;
}

std::pair<int64_t, int64_t> RankShard::expert_range(int64_t layer) const {
  if (stage_size <= 1) return {0, num_experts};
  // Rotate which members get the larger share so the extra experts of a non-divisible
  // count spread over the ranks layer by layer.
  const int64_t slot = (member + layer) % stage_size;
  return even_range(num_experts, stage_size, slot);
}

WeightSelection RankShard::selection() const {
  WeightSelection s;
  s.layer_begin = layer_begin;
  s.layer_end = layer_end;
  s.embed = embed;
  s.head = head;
  s.kv_head_begin = kv_head_begin;
  s.kv_head_end = kv_head_end;
  if (splits_experts()) {
    const RankShard self = *this;
    s.expert_range = [self](int64_t layer) { return self.expert_range(layer); };
  }
  return s;
}

ModelConfig RankShard::rank_config(const ModelConfig& c) const {
  ModelConfig r = c;
  r.num_hidden_layers = layer_end - layer_begin;
  if (c.num_key_value_heads > 0) {
    const int64_t group = c.num_attention_heads / c.num_key_value_heads;
    r.num_key_value_heads = kv_head_end - kv_head_begin;
    r.num_attention_heads = r.num_key_value_heads * group;
  }
  return r;
}

RankShard rank_shard(const ShardPlan& plan, const ModelConfig& c, int rank) {
  RankShard r;
  r.rank = rank;
  r.stage = plan.stage_of_rank(rank);
  const PipelineStage& st = plan.stages[static_cast<size_t>(r.stage)];
  r.member = rank - st.first_rank;
  r.stage_size = st.ranks;
  r.stages = static_cast<int>(plan.stages.size());
  r.layer_begin = st.layer_begin;
  r.layer_end = st.layer_end;
  r.embed = r.stage == 0;
  r.head = rank == plan.logits_rank();
  r.num_experts = c.num_experts;
  r.num_kv_heads = c.num_key_value_heads;
  if (st.ranks > 1 && plan.split_attention) {
    std::tie(r.kv_head_begin, r.kv_head_end) =
        even_range(c.num_key_value_heads, st.ranks, r.member);
  } else {
    r.kv_head_begin = 0;
    r.kv_head_end = c.num_key_value_heads;
  }
  return r;
}

RankFootprint rank_footprint(const ModelConfig& c, const ModelBytes& mb, const RankShard& r,
                             int64_t ctx, int kv_bits) {
  RankFootprint f;
  const double heads = c.num_key_value_heads > 0
                           ? static_cast<double>(r.kv_head_end - r.kv_head_begin) /
                                 static_cast<double>(c.num_key_value_heads)
                           : 1.0;
  double w = 0;
  for (int64_t l = r.layer_begin; l < r.layer_end; ++l) {
    const LayerBytes& L = mb.layers[static_cast<size_t>(l)];
    const auto [e0, e1] = r.expert_range(l);
    const double experts =
        c.num_experts > 0 ? static_cast<double>(e1 - e0) / static_cast<double>(c.num_experts) : 0.0;
    w += static_cast<double>(L.norms + L.router + L.dense_mlp) +
         static_cast<double>(L.attention) * heads + static_cast<double>(L.experts) * experts;
  }
  uint64_t weights = static_cast<uint64_t>(w + 0.5);
  if (r.embed) weights += mb.embed;
  if (r.head) weights += mb.final_norm + (mb.tied && r.embed ? 0 : mb.head_matrix());
  f.weights = weights;
  f.kv = static_cast<uint64_t>(
             static_cast<double>(kv_bytes_per_token_per_layer(c, kv_bits)) * heads + 0.5) *
         static_cast<uint64_t>(r.layer_end - r.layer_begin) *
         static_cast<uint64_t>(std::max<int64_t>(ctx, 0));
  f.activations = activation_bytes(c, ctx);
  return f;
}

std::string describe_plan(const ShardPlan& plan, const ModelConfig& c) {
  std::ostringstream os;
  os << parallel_mode_name(plan.mode) << " plan over " << plan.world_size() << " rank"
     << (plan.world_size() == 1 ? "" : "s") << " (" << plan.reason << ")";
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    const PipelineStage& st = plan.stages[s];
    os << "\n  stage " << s << ": rank" << (st.ranks > 1 ? "s " : " ") << st.first_rank;
    if (st.ranks > 1) os << "-" << st.first_rank + st.ranks - 1;
    os << ", layers " << st.layer_begin << "-" << st.layer_end - 1;
    if (s == 0) os << ", embedding";
    if (s + 1 == plan.stages.size())
      os << ", final norm + lm_head (rank " << plan.logits_rank() << ")";
    if (st.ranks > 1) {
      const RankShard r0 = rank_shard(plan, c, st.first_rank);
      os << "; experts per rank (layer " << st.layer_begin << "):";
      for (int m = 0; m < st.ranks; ++m) {
        RankShard r = r0;
        r.member = m;
        const auto [b, e] = r.expert_range(st.layer_begin);
        os << (m ? "/" : " ") << e - b;
      }
      os << ", rotating by layer; ";
      if (plan.split_attention) {
        os << "KV heads per rank:";
        for (int m = 0; m < st.ranks; ++m) {
          const auto [b, e] = even_range(c.num_key_value_heads, st.ranks, m);
          os << (m ? "/" : " ") << e - b;
        }
      } else {
        os << "attention replicated (head boundaries off o_proj's quantization groups)";
      }
    }
  }
  return os.str();
}

}  // namespace qcoder
