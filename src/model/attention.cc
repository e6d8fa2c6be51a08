#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "kernels/ops.h"
#include "kernels/reference/ops.h"
#include "model/blocks.h"
#include "model/linear.h"
#include "model/rope_scaling.h"

namespace qcoder {
namespace {

// A run of consecutive batch rows of one sequence: positions pos0 .. pos0 + len - 1.
struct Segment {
  int64_t row0 = 0, len = 0, pos0 = 0;
  KvCache* cache = nullptr;
};

std::vector<Segment> segments_of(const BatchRows& rows) {
  std::vector<Segment> segs;
  for (int64_t r = 0; r < rows.size(); ++r) {
    if (!segs.empty()) {
      Segment& s = segs.back();
      if (s.cache == rows.cache[r] && s.pos0 + s.len == rows.pos[r]) {
        ++s.len;
        continue;
      }
    }
    segs.push_back(Segment{r, 1, rows.pos[r], rows.cache[r]});
  }
  return segs;
}

}  // namespace

void attention_block(const ModelConfig& c, const LayerWeights& w, int64_t layer, const float* h,
                     const BatchRows& rows, float* out, ThreadPool& pool) {
  const int64_t n = rows.size(), nh = c.num_attention_heads, nkv = c.num_key_value_heads,
                hd = c.head_dim;
  std::vector<float> q(static_cast<size_t>(n * nh * hd)), k(static_cast<size_t>(n * nkv * hd)),
      v(static_cast<size_t>(n * nkv * hd));
  {
    const QMatrix* ms[] = {&w.q_proj, &w.k_proj, &w.v_proj};
    float* ys[] = {q.data(), k.data(), v.data()};
    apply_linears(ms, h, n, ys, pool);
  }

  // RoPE angles depend only on the position: computed once per forward call (double
  // precision angles, as the reference), shared by every layer.
  if (static_cast<int64_t>(rows.rope_cos.size()) != n * (hd / 2)) {
    rows.rope_cos.resize(static_cast<size_t>(n * (hd / 2)));
    rows.rope_sin.resize(rows.rope_cos.size());
    // YaRN (model/rope_scaling.h) changes the frequencies and scales cos/sin by the attention
    // factor; without scaling these are exactly the plain theta^(-2i/d) angles.
    const std::vector<double> inv_freq = rope_inv_freq(c);
    const double rope_scale = rope_attention_factor(c);
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        ref::rope_angles(rows.pos[r], hd / 2, inv_freq.data(), rope_scale, &rows.rope_cos[r * (hd / 2)],
                         &rows.rope_sin[r * (hd / 2)]);
    });
  }

  // q/k norm (per head, before RoPE), RoPE, then store keys/values at their positions.
  pool.parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* cs = &rows.rope_cos[r * (hd / 2)];
      const float* sn = &rows.rope_sin[r * (hd / 2)];
      for (int64_t hh = 0; hh < nh; ++hh) {
        float* x = &q[(r * nh + hh) * hd];
        ops::rms_norm(x, w.q_norm.data(), hd, c.rms_norm_eps, x);
        ops::rope_rotate_half(x, hd, cs, sn);
      }
      for (int64_t hh = 0; hh < nkv; ++hh) {
        float* x = &k[(r * nkv + hh) * hd];
        ops::rms_norm(x, w.k_norm.data(), hd, c.rms_norm_eps, x);
        ops::rope_rotate_half(x, hd, cs, sn);
      }
      // Stored in the cache's format (bf16, quantized, ...): attention reads them back from
      // there, so the new tokens see their own keys as rounded, like every later query.
      rows.cache[r]->store(layer, rows.pos[r], &k[r * nkv * hd], &v[r * nkv * hd]);
    }
  });

  // Causal GQA attention, per sequence segment: the keys of positions 0..last are reached one
  // position at a time through the cache (paged caches need no change here).
  const ops::AttentionShape shape{nh, nkv, hd, static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)))};
  const std::vector<Segment> segs = segments_of(rows);
  std::vector<std::vector<const uint8_t*>> k_rows(segs.size()), v_rows(segs.size());
  std::vector<ops::AttentionShape> shapes(segs.size(), shape);
  // Work items of all segments in one region (decode segments at long contexts are split
  // into key chunks, flash-decoding style), then one region for the segments' combine passes.
  std::vector<ops::AttentionWork> work(segs.size());
  std::vector<int64_t> first_item(segs.size() + 1, 0), first_combine(segs.size() + 1, 0),
      first_partial(segs.size() + 1, 0);
  for (size_t s = 0; s < segs.size(); ++s) {
    const int64_t n_keys = segs[s].pos0 + segs[s].len;
    k_rows[s].resize(static_cast<size_t>(n_keys));
    v_rows[s].resize(static_cast<size_t>(n_keys));
    for (int64_t t = 0; t < n_keys; ++t) {
      k_rows[s][t] = segs[s].cache->key_row(layer, t);
      v_rows[s][t] = segs[s].cache->value_row(layer, t);
    }
    shapes[s].kv = segs[s].cache->format();  // rows are decoded inside the kernel
    work[s] = ops::attention_work(shape, segs[s].len, n_keys);
    first_item[s + 1] = first_item[s] + work[s].items;
    first_combine[s + 1] = first_combine[s] + work[s].combine_items;
    first_partial[s + 1] = first_partial[s] + work[s].partial_floats;
  }
  std::vector<float> attn(static_cast<size_t>(n * nh * hd));
  // Chunk states of split segments (every slot is written before it is read: no zeroing).
  const std::unique_ptr<float[]> partials(new float[static_cast<size_t>(first_partial.back())]);
  std::vector<std::vector<float>> scratch(static_cast<size_t>(pool.size()));
  const auto segment_of = [](const std::vector<int64_t>& first, int64_t item) {
    return static_cast<size_t>(std::upper_bound(first.begin(), first.end(), item) - first.begin() - 1);
  };
  pool.parallel_items(first_item.back(), [&](int64_t item, int thread) {
    const size_t s = segment_of(first_item, item);
    const Segment& sg = segs[s];
    ops::attention_item(shapes[s], &q[sg.row0 * nh * hd], sg.len, sg.pos0 + sg.len, k_rows[s].data(),
                        v_rows[s].data(), &attn[sg.row0 * nh * hd], partials.get() + first_partial[s],
                        item - first_item[s], scratch[static_cast<size_t>(thread)]);
  });
  if (first_combine.back() > 0)
    pool.parallel_items(first_combine.back(), [&](int64_t item, int) {
      const size_t s = segment_of(first_combine, item);
      const Segment& sg = segs[s];
      ops::attention_combine(shapes[s], sg.len, sg.pos0 + sg.len, partials.get() + first_partial[s],
                             &attn[sg.row0 * nh * hd], item - first_combine[s]);
    });
  apply_linear(w.o_proj, attn.data(), n, out, pool);
}

}  // namespace qcoder
