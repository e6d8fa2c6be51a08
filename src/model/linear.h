// Threaded application of a weight matrix to a batch of activation rows.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/qmatrix.h"

namespace qcoder {

// Y [n, m.rows] = X [n, m.cols] · Wᵀ, output features split across the pool.
void apply_linear(const QMatrix& m, const float* X, int64_t n, float* Y, ThreadPool& pool);

}  // namespace qcoder
