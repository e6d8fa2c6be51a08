// Scalar reference kernels for quantized weights: the oracles every fast kernel is tested
// against. Activations are float32; each weight is dequantized exactly as MLX defines it
// (affine: scale*q + bias; mx/nv: element * scale) in float32.
#pragma once

#include <cstdint>

#include "kernels/qmatrix.h"

namespace qcoder::ref {

// Preconditions (asserted, not thrown): m passes validate_qmatrix, 0 <= row < m.rows.
// Affine is computed as (scale * q) + bias with no fma, bitwise equal to MLX's CPU
// mx.dequantize with float32 scales/biases; mx/nv scales decode as MLX does (E8M0 255 = +inf,
// see mx_scale_to_f32). Tested bitwise against tests/fixtures/quant/quant_vectors.safetensors.

// out[0..cols) = row `row` of m, dequantized.
void dequantize_row(const QMatrix& m, int64_t row, float* out);

// Y[t, r] = sum_c W[r, c] * X[t, c] for t in [0, n_tokens), r in [row_begin, row_end).
// X is [n_tokens, cols] row-major, Y is [n_tokens, m.rows] row-major. Each output is a
// float32 sum in increasing c, so a row's value does not depend on n_tokens or on how the
// rows are split between threads.
void matmul_rows(const QMatrix& m, const float* X, int64_t n_tokens, float* Y, int64_t row_begin,
                 int64_t row_end);

}  // namespace qcoder::ref
