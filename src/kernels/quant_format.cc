#include "kernels/quant_format.h"

#include "core/error.h"

namespace qcoder {

std::string_view quant_mode_name(QuantMode m) {
  switch (m) {
    case QuantMode::kNone:
      return "none";
    case QuantMode::kAffine:
      return "affine";
    case QuantMode::kMxfp4:
      return "mxfp4";
    case QuantMode::kMxfp8:
      return "mxfp8";
    case QuantMode::kNvfp4:
      return "nvfp4";
  }
  return "unknown";
}

std::optional<QuantMode> parse_quant_mode(std::string_view s) {
  if (s == "affine") return QuantMode::kAffine;
  if (s == "mxfp4") return QuantMode::kMxfp4;
  if (s == "mxfp8") return QuantMode::kMxfp8;
  if (s == "nvfp4") return QuantMode::kNvfp4;
  return std::nullopt;
}

QuantSpec default_quant_spec(QuantMode m) {
  switch (m) {
    case QuantMode::kNone:
      return {QuantMode::kNone, 0, 0};
    case QuantMode::kAffine:
      return {QuantMode::kAffine, 4, 64};
    case QuantMode::kMxfp4:
      return {QuantMode::kMxfp4, 4, 32};
    case QuantMode::kMxfp8:
      return {QuantMode::kMxfp8, 8, 32};
    case QuantMode::kNvfp4:
      return {QuantMode::kNvfp4, 4, 16};
  }
  return {};
}

std::string QuantSpec::to_string() const {
  const std::string name(quant_mode_name(mode));
  if (mode == QuantMode::kNone) return name;
  if (mode != QuantMode::kAffine && *this == default_quant_spec(mode)) return name;
  return name + " " + std::to_string(bits) + "-bit g" + std::to_string(group_size);
}

bool affine_bits_supported(int bits) {
  // MLX 0.32.4 `quantize`: "The supported bits are 1, 2, 3, 4, 5, 6 and 8."
  return bits == 1 || bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
}

void validate_quant_spec(const QuantSpec& spec, const std::string& where) {
  const auto fail = [&](const std::string& why) {
    throw Error(where + ": unsupported quantization " + spec.to_string() + ": " + why);
  };
  switch (spec.mode) {
    case QuantMode::kNone:
      return;
    case QuantMode::kAffine:
      if (!affine_bits_supported(spec.bits)) fail("affine bits must be one of 1, 2, 3, 4, 5, 6, 8");
      if (spec.group_size != 32 && spec.group_size != 64 && spec.group_size != 128)
        fail("affine group size must be 32, 64 or 128");
      return;
    case QuantMode::kMxfp4:
    case QuantMode::kMxfp8:
    case QuantMode::kNvfp4: {
      const QuantSpec want = default_quant_spec(spec.mode);
      if (spec.bits != want.bits)
        fail(std::string(quant_mode_name(spec.mode)) + " requires bits " +
             std::to_string(want.bits));
      if (spec.group_size != want.group_size)
        fail(std::string(quant_mode_name(spec.mode)) + " requires group size " +
             std::to_string(want.group_size));
      return;
    }
  }
  fail("unknown mode");
}

int64_t packed_words_per_row(const QuantSpec& spec, int64_t cols) {
  if (!spec.quantized()) return 0;
  return (cols * spec.bits + 31) / 32;
}

bool quant_mode_has_biases(QuantMode m) { return m == QuantMode::kAffine; }

float fp4_e2m1_to_f32(uint8_t code) {
  static constexpr float kFp4[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                     -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  return kFp4[code & 0xfu];
}

float mx_scale_to_f32(uint8_t s) { return e8m0_to_f32(s); }

}  // namespace qcoder
