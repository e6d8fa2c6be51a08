#include "kernels/kv_format.h"

#include "core/error.h"

namespace qcoder {

int KvFormat::bits() const {
  switch (dtype) {
    case KvDtype::kF32: return 32;
    case KvDtype::kBF16: return 16;
    case KvDtype::kQ8: return 8;
    case KvDtype::kQ4: return 4;
  }
  return 0;
}

KvFormat kv_format_from_bits(int64_t bits, int64_t group) {
  KvFormat f;
  switch (bits) {
    case 32: f.dtype = KvDtype::kF32; break;
    case 16: f.dtype = KvDtype::kBF16; break;
    case 8: f.dtype = KvDtype::kQ8; break;
    case 4: f.dtype = KvDtype::kQ4; break;
    default:
      throw Error("KV cache bits must be 16 (bf16), 8, 4 (affine quantized) or 32 (float32), got " +
                  std::to_string(bits));
  }
  if (group != 32 && group != 64 && group != 128)
    throw Error("KV quantization group size must be 32, 64 or 128, got " + std::to_string(group));
  f.group = static_cast<int32_t>(group);
  return f;
}

std::string kv_format_name(const KvFormat& f) {
  switch (f.dtype) {
    case KvDtype::kF32: return "f32";
    case KvDtype::kBF16: return "bf16";
    case KvDtype::kQ8: return "q8 (group " + std::to_string(f.group) + ")";
    case KvDtype::kQ4: return "q4 (group " + std::to_string(f.group) + ")";
  }
  return "?";
}

void validate_kv_format(const KvFormat& f, int64_t head_dim) {
  if (f.bits() == 0) throw Error("unknown KV cache format");
  if (!f.quantized()) return;
  if (f.group <= 0 || f.group % 8 != 0 || head_dim % f.group != 0)
    throw Error("KV quantization group " + std::to_string(f.group) + " does not divide head_dim " +
                std::to_string(head_dim));
}

int64_t kv_row_bytes(const KvFormat& f, int64_t n) {
  switch (f.dtype) {
    case KvDtype::kF32: return 4 * n;
    case KvDtype::kBF16: return 2 * n;
    case KvDtype::kQ8:
    case KvDtype::kQ4: return n * f.bits() / 8 + 2 * 2 * (n / f.group);
  }
  return 0;
}

}  // namespace qcoder
