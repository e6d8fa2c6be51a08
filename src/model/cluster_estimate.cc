#include "model/cluster_estimate.h"

#include <algorithm>
#include <cmath>

namespace qcoder {
namespace {

double binomial(int64_t n, int64_t k) {
  if (k < 0 || k > n) return 0.0;
  double r = 1.0;
  for (int64_t i = 1; i <= k; ++i) r = r * static_cast<double>(n - k + i) / static_cast<double>(i);
  return r;
}

struct Link {
  double latency, bandwidth;
  double message(double bytes) const { return latency + bytes / bandwidth; }
};

}  // namespace

double expected_max_expert_load(int64_t E, int64_t k, int ranks) {
  if (ranks <= 1 || E <= 0) return static_cast<double>(k);
  // E[max] = sum over t of P(max > t); P(max <= t) counts the k-subsets with at most t experts
  // in every rank's range: the x^k coefficient of prod_m sum_{j<=t} C(size_m, j) x^j.
  const double total = binomial(E, k);
  double expect = 0.0;
  for (int64_t t = 0; t < k; ++t) {
    std::vector<double> poly(static_cast<size_t>(k) + 1, 0.0);
    poly[0] = 1.0;
    for (int m = 0; m < ranks; ++m) {
      const auto [b, e] = even_range(E, ranks, m);
      std::vector<double> next(poly.size(), 0.0);
      for (int64_t i = 0; i <= k; ++i) {
        if (poly[static_cast<size_t>(i)] == 0.0) continue;
        for (int64_t j = 0; j <= std::min(t, e - b) && i + j <= k; ++j)
          next[static_cast<size_t>(i + j)] += poly[static_cast<size_t>(i)] * binomial(e - b, j);
      }
      poly.swap(next);
    }
    expect += 1.0 - poly[static_cast<size_t>(k)] / total;
  }
  return expect;
}

DecodeEstimate estimate_decode(const ModelConfig& c, const ModelBytes& mb, const ShardPlan& plan,
                               const std::vector<int>& node_of_rank, const ClusterSpec& spec,
                               int64_t ctx, int kv_bits) {
  DecodeEstimate est;
  const int P = plan.world_size();
  const auto node = [&](int r) {
    return r < static_cast<int>(node_of_rank.size()) ? node_of_rank[static_cast<size_t>(r)] : r;
  };
  const auto rank_bandwidth = [&](int r) {
    int sharing = 0;
    for (int q = 0; q < P; ++q) sharing += node(q) == node(r);
    return spec.mem_bandwidth / std::max(1, sharing);
  };
  const Link remote{spec.link_latency, spec.link_bandwidth},
      local{spec.local_latency, spec.local_bandwidth};
  const auto link_between = [&](int a, int b) { return node(a) == node(b) ? local : remote; };
  const double act_bytes = 4.0 * static_cast<double>(c.hidden_size);  // one float32 row
  const double kv_layer =
      static_cast<double>(kv_bytes_per_token_per_layer(c, kv_bits)) * static_cast<double>(ctx);
  const double k = static_cast<double>(c.num_experts_per_tok);

  double bottleneck = 0;
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    const PipelineStage& st = plan.stages[s];
    const int g = st.ranks;
    bool same_node = true;
    for (int m = 1; m < g; ++m)
      same_node = same_node && node(st.first_rank + m) == node(st.first_rank);
    const Link group_link = same_node ? local : remote;
    // All-reduce = all-gather of one row per rank: log2(g) rounds of latency, (g-1) rows in.
    const double reduce = g > 1
                              ? std::ceil(std::log2(static_cast<double>(g))) * group_link.latency +
                                    (g - 1) * act_bytes / group_link.bandwidth
                              : 0.0;
    const double load = expected_max_expert_load(c.num_experts, c.num_experts_per_tok, g);
    double stage_compute = 0, stage_comm = 0;
    for (int64_t l = st.layer_begin; l < st.layer_end; ++l) {
      const LayerBytes& L = mb.layers[static_cast<size_t>(l)];
      const double per_expert =
          c.num_experts > 0 ? static_cast<double>(L.experts) / static_cast<double>(c.num_experts)
                            : 0;
      double slowest = 0;
      for (int m = 0; m < g; ++m) {
        const RankShard r = rank_shard(plan, c, st.first_rank + m);
        const double heads = c.num_key_value_heads > 0
                                 ? static_cast<double>(r.kv_head_end - r.kv_head_begin) /
                                       static_cast<double>(c.num_key_value_heads)
                                 : 1.0;
        const double fixed = static_cast<double>(L.norms + L.router + L.dense_mlp) +
                             (static_cast<double>(L.attention) + kv_layer) * heads;
        slowest = std::max(slowest,
                           (fixed + (L.sparse ? load * per_expert : 0.0)) / rank_bandwidth(r.rank));
        est.bytes_read += static_cast<uint64_t>(fixed + (L.sparse ? k * per_expert / g : 0.0));
      }
      stage_compute += slowest;
      if (g > 1) {
        const int reduces = (plan.split_attention ? 1 : 0) + (L.sparse ? 1 : 0);
        stage_comm += reduces * reduce;
        est.messages +=
            reduces * static_cast<int64_t>(std::ceil(std::log2(static_cast<double>(g))));
        est.comm_bytes += static_cast<uint64_t>(reduces * g * (g - 1) * act_bytes);
      }
    }
    if (s == 0)
      stage_compute +=
          static_cast<double>(mb.embed_row(c.vocab_size)) / rank_bandwidth(st.first_rank);
    if (s + 1 == plan.stages.size()) {
      const double head = static_cast<double>(mb.head_matrix() + mb.final_norm);
      stage_compute += head / rank_bandwidth(plan.logits_rank());
      est.bytes_read += static_cast<uint64_t>(head);
    }
    double hop = 0;
    if (s + 1 < plan.stages.size()) {
      hop = link_between(st.first_rank, plan.stages[s + 1].first_rank).message(act_bytes);
      est.messages += 1;
      est.comm_bytes += static_cast<uint64_t>(act_bytes * plan.stages[s + 1].ranks);
    }
    est.compute_seconds += stage_compute;
    est.comm_seconds += stage_comm + hop;
    bottleneck = std::max(bottleneck, stage_compute + stage_comm + hop);
  }
  if (P > 1) {
    // The step command from rank 0 (a broadcast tree of small messages) and the logits back.
    const double tree = std::ceil(std::log2(static_cast<double>(P)));
    bool one_node = true;
    for (int r = 1; r < P; ++r) one_node = one_node && node(r) == node(0);
    est.comm_seconds += tree * (one_node ? local : remote).latency;
    est.messages += static_cast<int64_t>(tree);
    if (plan.logits_rank() != 0) {
      const double logits = 4.0 * static_cast<double>(c.vocab_size);
      est.comm_seconds += link_between(plan.logits_rank(), 0).message(logits);
      est.comm_bytes += static_cast<uint64_t>(logits);
      est.messages += 1;
    }
  }
  est.pipelined_tokens_per_second = bottleneck > 0 ? 1.0 / bottleneck : 0;
  return est;
}

}  // namespace qcoder
