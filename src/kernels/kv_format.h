// Element formats of the KV cache (model/kv_cache.h) and the byte layout of one stored row.
//
// A row is one position's keys (or values) of one layer: n = n_kv_heads * head_dim elements.
//   f32:  n float32 (4n bytes)
//   bf16: n bfloat16, round to nearest even (2n bytes)
//   q8/q4: affine quantization along the row in groups of `group` elements (a group never
//         crosses a head, since group divides head_dim), as mlx-lm's QuantizedKVCache does
//         with mx.quantize (kernels/reference/kv_ref.h has the exact rule): bytes
//         [0, n*bits/8) hold the unsigned levels q, then n/group bf16 scales, then n/group
//         bf16 biases. Element value = scale * q + bias (float32, no fma).
//         q8: element i is byte i. q4: each group is group/2 bytes; byte j of a group holds
//         element j in its low nibble and element j + group/2 in its high nibble. (mx.quantize
//         packs q4 as a plain little-endian bit stream; this order lets SIMD decode whole
//         vectors of consecutive elements with one mask and one shift. The levels, scales and
//         biases are mlx's bit for bit; only their place in the block differs.)
#pragma once

#include <cstdint>
#include <string>

namespace qcoder {

enum class KvDtype : uint8_t { kF32, kBF16, kQ8, kQ4 };

struct KvFormat {
  KvDtype dtype = KvDtype::kBF16;  // the default cache format
  int32_t group = 64;              // q8/q4: elements per scale/bias group

  int bits() const;  // 32, 16, 8 or 4
  bool quantized() const { return dtype == KvDtype::kQ8 || dtype == KvDtype::kQ4; }
  friend bool operator==(const KvFormat& a, const KvFormat& b) {
    return a.dtype == b.dtype && (!a.quantized() || a.group == b.group);
  }
};

// 32, 16, 8 or 4 bits (the --kv-bits values); throws qcoder::Error otherwise or for a group
// size that is not 32, 64 or 128.
KvFormat kv_format_from_bits(int64_t bits, int64_t group = 64);
// "f32", "bf16", "q8 (group 64)", "q4 (group 64)".
std::string kv_format_name(const KvFormat& f);
// Throws qcoder::Error unless rows of heads of head_dim elements can be stored (quantized:
// group must divide head_dim).
void validate_kv_format(const KvFormat& f, int64_t head_dim);

// Bytes of one row of n elements (quantized: n a multiple of the group).
int64_t kv_row_bytes(const KvFormat& f, int64_t n);

}  // namespace qcoder
