// Element types found in safetensors files, and scalar conversions between the narrow
// float formats (bf16, f16, fp8 e4m3, e8m0) and float32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace qcoder {

enum class DType {
  kF64, kF32, kF16, kBF16,
  kI64, kI32, kI16, kI8,
  kU64, kU32, kU16, kU8,
  kBool, kC64,
  kF8E4M3, kF8E8M0,
};

// Bytes per element.
size_t dtype_size(DType t);
// The safetensors spelling ("F32", "BF16", ...).
std::string_view dtype_name(DType t);
// Parses a safetensors dtype string; nullopt when unknown.
std::optional<DType> parse_dtype(std::string_view s);

inline float bits_to_f32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }

// Round to nearest even, as MLX and PyTorch cast float32 -> bfloat16; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits = f32_to_bits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// FP8 E4M3 (OCP "fn" variant: no infinities, 0x7f/0xff are NaN), as used by nvfp4 scales.
float fp8_e4m3_to_f32(uint8_t v);
// E8M0 scale byte: 2^(s-127). MLX decodes s = 0 as 2^-127 and 255 as +inf.
float e8m0_to_f32(uint8_t s);

// Unaligned little-endian loads: MLX writes safetensors without padding, so tensor data in a
// mapped file is generally not aligned to its element size.
inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

// Reads element i of a float-typed buffer (F32, F16 or BF16) as float32.
float load_float(DType t, const uint8_t* base, size_t i);

}  // namespace qcoder
