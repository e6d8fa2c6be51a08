// The model's weights bound to typed views over the mapped checkpoint. Binding checks every
// tensor against the config (shape, dtype, quantization bits/group inferred from shapes) and
// fails with an error naming the tensor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "kernels/qmatrix.h"
#include "model/config.h"

namespace qcoder {

// One expert stack: E matrices of the same shape, from a stacked `switch_mlp.NAME` tensor
// [E, out, in] or from per-expert `experts.E.NAME` tensors. Under expert parallelism the
// experts another rank owns are empty views (rows == 0), which moe_block skips.
struct ExpertStack {
  std::vector<QMatrix> experts;
};

struct LayerWeights {
  std::vector<float> input_norm, post_norm;  // [hidden]
  std::vector<float> q_norm, k_norm;         // [head_dim]
  QMatrix q_proj, k_proj, v_proj, o_proj;
  bool sparse = false;
  // MoE (sparse) layers
  QMatrix router;  // [num_experts, hidden]
  ExpertStack gate_proj, up_proj, down_proj;
  // Dense layers
  QMatrix mlp_gate, mlp_up, mlp_down;
};

struct ModelWeights {
  QMatrix embed;    // [vocab, hidden]; also the output head when tied
  QMatrix lm_head;  // [vocab, hidden]
  std::vector<float> final_norm;
  std::vector<LayerWeights> layers;  // decoder layers first_layer, first_layer + 1, ...
  int64_t first_layer = 0;
  uint64_t bytes = 0;        // checkpoint bytes of all bound tensors (of the bound parts, sharded)
  size_t tensor_count = 0;   // tensors bound (touched at least in part)
};

// Binds every tensor the config calls for. Tensors in the store that the model does not use
// are reported with a warning (mlx-lm would refuse them under strict loading).
ModelWeights bind_weights(const ModelConfig& config, const WeightStore& store);

// What one rank of a sharded model binds. Parts outside the selection are neither bound nor
// read: their pages are never touched, so a rank's resident memory is its share.
struct WeightSelection {
  int64_t layer_begin = 0, layer_end = -1;  // decoder layers [begin, end); -1 = to the last
  bool embed = true;  // the embedding table (the first pipeline stage)
  bool head = true;   // the final norm and the output head (the rank that computes logits)
  // Attention heads kept: KV heads [begin, end) with their query heads (whole GQA groups).
  // q/k/v become row slices and o_proj the matching column slice; -1 = all heads.
  int64_t kv_head_begin = 0, kv_head_end = -1;
  // Experts bound in a layer: [first, second); null = all.
  std::function<std::pair<int64_t, int64_t>(int64_t layer)> expert_range;
};
ModelWeights bind_weights(const ModelConfig& config, const WeightStore& store,
                          const WeightSelection& selection);

// Views of part of a matrix (no copy). row_slice keeps output rows [begin, end).
// col_slice keeps input columns [begin, end) with the same row stride: the packed data moves
// by begin * bits / 8 bytes and the scales/biases by begin / group_size entries, so for a
// quantized matrix begin and end must be multiples of the group size (throws otherwise).
QMatrix row_slice(const QMatrix& m, int64_t begin, int64_t end);
QMatrix col_slice(const QMatrix& m, int64_t begin, int64_t end);

}  // namespace qcoder
