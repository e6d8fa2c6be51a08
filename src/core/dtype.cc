#include "core/dtype.h"

#include <array>
#include <cassert>
#include <cmath>
#include <limits>
#include <utility>

namespace qcoder {
namespace {

struct DTypeEntry {
  DType type;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeEntry, 16> kDTypes = {{
    {DType::kF64, "F64", 8},       {DType::kF32, "F32", 4},        {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},     {DType::kI64, "I64", 8},        {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},       {DType::kI8, "I8", 1},          {DType::kU64, "U64", 8},
    {DType::kU32, "U32", 4},       {DType::kU16, "U16", 2},        {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},     {DType::kC64, "C64", 8},        {DType::kF8E4M3, "F8_E4M3", 1},
    {DType::kF8E8M0, "F8_E8M0", 1},
}};

const DTypeEntry& entry(DType t) {
  for (const auto& e : kDTypes)
    if (e.type == t) return e;
  assert(false && "unknown dtype");
  return kDTypes[0];
}

}  // namespace

size_t dtype_size(DType t) { return entry(t).size; }
std::string_view dtype_name(DType t) { return entry(t).name; }

std::optional<DType> parse_dtype(std::string_view s) {
  for (const auto& e : kDTypes)
    if (e.name == s) return e.type;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return bits_to_f32(sign);
    // Subnormal: value = mant * 2^-24.
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (mant << 13));
  return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t f32_to_f16(float f) {
  const uint32_t bits = f32_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00u;
  if (a >= 65520.0f) return sign | 0x7c00u;  // rounds to infinity
  if (a < std::ldexp(1.0f, -14)) {
    // Subnormal range: quantum 2^-24, round half to even via nearbyint.
    const auto m = static_cast<uint16_t>(std::nearbyint(std::ldexp(a, 24)));
    return sign | m;
  }
  uint32_t abits = f32_to_bits(a);
  abits += 0xfffu + ((abits >> 13) & 1u);
  const uint32_t exp = (abits >> 23) - 112;
  return static_cast<uint16_t>(sign | (exp << 10) | ((abits >> 13) & 0x3ffu));
}

float fp8_e4m3_to_f32(uint8_t v) {
  const bool neg = v & 0x80u;
  const int exp = (v >> 3) & 0xf;
  const int mant = v & 0x7;
  float out;
  if (exp == 0xf && mant == 0x7) {
    out = std::nanf("");
  } else if (exp == 0) {
    out = std::ldexp(static_cast<float>(mant), -9);  // subnormal: mant/8 * 2^-6
  } else {
    out = std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp - 7);
  }
  return neg ? -out : out;
}

float e8m0_to_f32(uint8_t s) {
  // MLX shifts the byte into a bf16 exponent (bits s << 7), so 255 is +inf, not NaN.
  if (s == 0xff) return std::numeric_limits<float>::infinity();
  if (s == 0) return bf16_to_f32(0x0040);  // 2^-127, as MLX's CPU decoder special-cases it
  return std::ldexp(1.0f, static_cast<int>(s) - 127);
}

float load_float(DType t, const uint8_t* base, size_t i) {
  switch (t) {
    case DType::kF32: return load_f32(base + 4 * i);
    case DType::kBF16: return bf16_to_f32(load_u16(base + 2 * i));
    case DType::kF16: return f16_to_f32(load_u16(base + 2 * i));
    default: assert(false && "load_float on a non-float dtype"); return 0.0f;
  }
}

}  // namespace qcoder
