// MLX weight storage formats: unquantized (f32/f16/bf16), affine (bits 2..8, groups 32/64/128)
// and the microscaling float formats mxfp4, mxfp8, nvfp4. See spec/model.md §5.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/dtype.h"

namespace qcoder {

enum class QuantMode { kNone, kAffine, kMxfp4, kMxfp8, kNvfp4 };

struct QuantSpec {
  QuantMode mode = QuantMode::kNone;
  int bits = 0;
  int group_size = 0;

  bool quantized() const { return mode != QuantMode::kNone; }
  bool operator==(const QuantSpec&) const = default;
  std::string to_string() const;  // "affine 4-bit g64", "mxfp4", "none"
};

std::string_view quant_mode_name(QuantMode m);
// "affine", "mxfp4", "mxfp8", "nvfp4"; nullopt otherwise.
std::optional<QuantMode> parse_quant_mode(std::string_view s);

// MLX's defaults when config gives only a mode: affine (64, 4), mxfp4 (32, 4), mxfp8 (32, 8),
// nvfp4 (16, 4).
QuantSpec default_quant_spec(QuantMode m);

// Throws qcoder::Error (prefixed by `where`) unless MLX accepts the combination: affine bits
// in {1,2,3,4,5,6,8} with group 32/64/128; mxfp4 4-bit g32; mxfp8 8-bit g32; nvfp4 4-bit g16.
// (MLX 0.32.4 also accepts affine 1-bit: "The supported bits are 1, 2, 3, 4, 5, 6 and 8".)
// Mode kNone is always accepted.
void validate_quant_spec(const QuantSpec& spec, const std::string& where);
bool affine_bits_supported(int bits);

// Packed uint32 words per row of `cols` logical elements (0 for mode kNone). For valid specs
// cols is a multiple of the group size, so cols*bits is a multiple of 32.
int64_t packed_words_per_row(const QuantSpec& spec, int64_t cols);
// Scale dtype: affine uses the checkpoint's float dtype; mx* use E8M0 bytes; nvfp4 E4M3 bytes.
// Only affine has biases.
bool quant_mode_has_biases(QuantMode m);

// FP4 E2M1 code (low 4 bits of `code`) -> value: 0, .5, 1, 1.5, 2, 3, 4, 6, and codes 8..15 the
// negatives (code 8 is -0.0, as MLX decodes it).
float fp4_e2m1_to_f32(uint8_t code);
// An E8M0 scale byte exactly as MLX (CPU and Metal, 0.32.4) decodes it: float bits s << 23,
// except s = 0 -> 2^-127. So s = 255 is +inf, not NaN (unlike the OCP spec and unlike
// core's e8m0_to_f32); an all-zero group times +inf then gives NaN, other codes +-inf.
float mx_scale_to_f32(uint8_t s);

}  // namespace qcoder
