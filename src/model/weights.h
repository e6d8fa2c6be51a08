// The model's weights bound to typed views over the mapped checkpoint. Binding checks every
// tensor against the config (shape, dtype, quantization bits/group inferred from shapes) and
// fails with an error naming the tensor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/qmatrix.h"
#include "model/config.h"

namespace qcoder {

// One expert stack: E matrices of the same shape, from a stacked `switch_mlp.NAME` tensor
// [E, out, in] or from per-expert `experts.E.NAME` tensors.
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
  std::vector<LayerWeights> layers;
  uint64_t bytes = 0;        // checkpoint bytes of all bound tensors
  size_t tensor_count = 0;   // tensors bound
};

// Binds every tensor the config calls for. Tensors in the store that the model does not use
// are reported with a warning (mlx-lm would refuse them under strict loading).
ModelWeights bind_weights(const ModelConfig& config, const WeightStore& store);

}  // namespace qcoder
