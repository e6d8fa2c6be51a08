// Threaded application of weight matrices to a batch of activation rows.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "kernels/qmatrix.h"

namespace qcoder {

// Y [n, m.rows] = X [n, m.cols] · Wᵀ, output features split across the pool.
void apply_linear(const QMatrix& m, const float* X, int64_t n, float* Y, ThreadPool& pool);

// Prepares X [n, m.cols] (rows gathered through row_ids when given) for m's format, rows
// split across the pool.
void prepare_linear_input(const QMatrix& m, const float* X, int64_t n, ops::PreparedActs& out,
                          ThreadPool& pool, const int32_t* row_ids = nullptr);

// One product of a batch: Y[t * ldy + r] = W[r] · acts row tokens[t] (t when tokens is null),
// t < n_tokens, all rows of m.
struct LinearJob {
  const QMatrix* m = nullptr;
  const ops::PreparedActs* acts = nullptr;
  const int32_t* tokens = nullptr;
  int64_t n_tokens = 0;
  float* Y = nullptr;
  int64_t ldy = 0;
};

// Runs every job in one parallel region, split into panels of rows handed out dynamically
// (jobs may differ in size, e.g. experts with different token counts).
void run_linear_jobs(std::span<const LinearJob> jobs, ThreadPool& pool);

// Applies several matrices to the same input (q/k/v, gate/up) in one parallel region,
// preparing the input once per distinct format. Ys[i] is [n, ms[i]->rows].
void apply_linears(std::span<const QMatrix* const> ms, const float* X, int64_t n,
                   std::span<float* const> Ys, ThreadPool& pool);

}  // namespace qcoder
