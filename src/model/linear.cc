#include "model/linear.h"

#include "kernels/reference/quant_ref.h"

namespace qcoder {

void apply_linear(const QMatrix& m, const float* X, int64_t n, float* Y, ThreadPool& pool) {
  if (n <= 0) return;
  pool.parallel_for(
      m.rows, [&](int64_t begin, int64_t end) { ref::matmul_rows(m, X, n, Y, begin, end); }, 16);
}

}  // namespace qcoder
