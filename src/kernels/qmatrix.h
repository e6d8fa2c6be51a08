// A weight matrix [rows, cols] in any MLX storage format, as a non-owning view over mapped
// memory (possibly unaligned). Expert stacks [E, rows, cols] are viewed one expert at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "kernels/quant_format.h"

namespace qcoder {

struct QMatrix {
  QuantSpec spec;                   // mode kNone: data holds rows*cols floats of `dtype`
  int64_t rows = 0;                 // output features
  int64_t cols = 0;                 // input features (logical, unpacked)
  const uint8_t* data = nullptr;    // kNone: floats; otherwise packed uint32 words (LE)
  DType dtype = DType::kF32;        // kNone: F32/F16/BF16; otherwise U32
  size_t row_bytes = 0;             // bytes from one row of data to the next
  const uint8_t* scales = nullptr;  // [rows, cols/group]: affine F32/F16/BF16; mx*/nv: U8
  DType scales_dtype = DType::kBF16;
  size_t scales_row_bytes = 0;
  const uint8_t* biases = nullptr;  // affine only, same layout/dtype as scales
  DType biases_dtype = DType::kBF16;
  size_t biases_row_bytes = 0;
  // Integer formats (affine, mxfp4, nvfp4): the width activations are quantized to per group
  // before the product (ops::PreparedActs): 16 (default: ~1e-5 relative, inside the float64
  // gate) or 8 (--fast: one int8 plane, half the multiply work; docs/PERFORMANCE.md).
  int act_bits = 16;

  // Bytes this matrix occupies in the checkpoint (data + scales + biases): rows times the
  // logical bytes per row of each part; stride padding (row_bytes beyond that) is not counted.
  uint64_t storage_bytes() const;
  // Logical bytes of one row of `data` (kNone: cols * dtype size; else packed words * 4).
  size_t packed_row_bytes() const;
  // Groups per row (cols / group_size); 0 for kNone.
  int64_t groups_per_row() const;
};

// Throws qcoder::Error (prefixed by `where`) unless the view is consistent: a spec MLX accepts,
// cols a multiple of the group size, non-null pointers, dtypes matching the mode (kNone:
// F32/F16/BF16 data; quantized: U32 data; affine: F32/F16/BF16 scales and biases; mxfp4/mxfp8:
// U8 or F8_E8M0 scales; nvfp4: U8 or F8_E4M3 scales; no biases outside affine) and row strides
// at least the logical row sizes.
void validate_qmatrix(const QMatrix& m, const std::string& where);

}  // namespace qcoder
