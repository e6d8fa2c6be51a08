// Scalar reference of the KV cache formats (kernels/kv_format.h): how a row is stored and read
// back, and attention over stored rows. The oracles of the SIMD attention kernel and of the
// cache; the cache writes rows with kv_encode_row itself.
#pragma once

#include <cstdint>

#include "kernels/kv_format.h"

namespace qcoder::ref {

// Stores the n floats x as one row of format f (kv_row_bytes(f, n) bytes at row).
// bf16: round to nearest even. q8/q4, per group of f.group elements, exactly MLX's CPU
// mx.quantize (the path of mlx-lm's QuantizedKVCache), float32 arithmetic:
//   levels = 2^bits - 1; s = max((max - min) / levels, 1e-7);
//   edge = min if |min| > |max| else max (and s = -s); q0 = rint(edge / s);
//   q0 != 0: s = edge / q0, bias = edge;  q0 == 0: bias = 0;
//   q_i = clamp(rint((x_i - bias) / s), 0, levels); s and bias are stored as bf16.
// rint rounds half to even (the default rounding mode).
void kv_encode_row(const KvFormat& f, const float* x, int64_t n, uint8_t* row);

// One quantization group's scale and bias from its min and max over `levels` (2^bits - 1), in
// float32 exactly as mx.quantize computes them (shared by the SIMD encoder, which must match).
struct KvGroupAffine {
  float scale = 0, bias = 0;
};
KvGroupAffine kv_group_affine(float wmin, float wmax, float levels);

// Elements [begin, begin + count) of a row of n elements, as float32. Quantized: begin and
// count multiples of the group; value = bf16(scale) * q + bf16(bias), no fma.
void kv_decode(const KvFormat& f, const uint8_t* row, int64_t n, int64_t begin, int64_t count,
               float* out);

// ref::attend_one_head over stored rows: key t is elements [offset, offset + head_dim) of
// row k_rows[t] (rows of row_elems elements in format f), likewise values; every key visible.
// Rows are decoded with kv_decode, then scored as attend_one_head does. scratch: n_keys floats.
void attend_one_head_kv(const KvFormat& f, const float* q, const uint8_t* const* k_rows,
                        const uint8_t* const* v_rows, int64_t row_elems, int64_t offset,
                        int64_t n_keys, int64_t head_dim, float scale, float* scratch, float* out);

}  // namespace qcoder::ref
