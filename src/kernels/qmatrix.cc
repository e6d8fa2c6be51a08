#include "kernels/qmatrix.h"

#include "core/error.h"

namespace qcoder {
namespace {

bool is_float_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

size_t QMatrix::packed_row_bytes() const {
  if (!spec.quantized()) return static_cast<size_t>(cols) * dtype_size(dtype);
  return static_cast<size_t>(packed_words_per_row(spec, cols)) * 4;
}

int64_t QMatrix::groups_per_row() const {
  if (!spec.quantized() || spec.group_size <= 0) return 0;
  return cols / spec.group_size;
}

uint64_t QMatrix::storage_bytes() const {
  const auto r = static_cast<uint64_t>(rows);
  uint64_t total = r * packed_row_bytes();
  if (!spec.quantized()) return total;
  const auto groups = static_cast<uint64_t>(groups_per_row());
  total += r * groups * dtype_size(scales_dtype);
  if (quant_mode_has_biases(spec.mode)) total += r * groups * dtype_size(biases_dtype);
  return total;
}

void validate_qmatrix(const QMatrix& m, const std::string& where) {
  const auto fail = [&](const std::string& why) {
    throw Error(where + ": invalid " + m.spec.to_string() + " matrix [" + std::to_string(m.rows) +
                ", " + std::to_string(m.cols) + "]: " + why);
  };
  validate_quant_spec(m.spec, where);
  if (m.rows < 0 || m.cols < 0) fail("negative shape");
  const bool empty = m.rows == 0 || m.cols == 0;
  if (!m.spec.quantized()) {
    if (!is_float_dtype(m.dtype)) fail("data dtype " + std::string(dtype_name(m.dtype)));
    if (!empty && m.data == nullptr) fail("no data");
    if (m.rows > 1 && m.row_bytes < m.packed_row_bytes()) fail("row stride too small");
    return;
  }
  if (m.cols % m.spec.group_size != 0)
    fail("cols is not a multiple of the group size " + std::to_string(m.spec.group_size));
  if (m.dtype != DType::kU32)
    fail("packed data must be U32, not " + std::string(dtype_name(m.dtype)));
  if (!empty && m.data == nullptr) fail("no data");
  if (m.rows > 1 && m.row_bytes < m.packed_row_bytes()) fail("row stride too small");
  if (!empty && m.scales == nullptr) fail("no scales");
  switch (m.spec.mode) {
    case QuantMode::kAffine:
      if (!is_float_dtype(m.scales_dtype))
        fail("scales dtype " + std::string(dtype_name(m.scales_dtype)));
      if (!empty && m.biases == nullptr) fail("no biases");
      if (!is_float_dtype(m.biases_dtype))
        fail("biases dtype " + std::string(dtype_name(m.biases_dtype)));
      break;
    case QuantMode::kMxfp4:
    case QuantMode::kMxfp8:
      if (m.scales_dtype != DType::kU8 && m.scales_dtype != DType::kF8E8M0)
        fail("scales dtype " + std::string(dtype_name(m.scales_dtype)) + " (want U8)");
      if (m.biases != nullptr) fail("unexpected biases");
      break;
    case QuantMode::kNvfp4:
      if (m.scales_dtype != DType::kU8 && m.scales_dtype != DType::kF8E4M3)
        fail("scales dtype " + std::string(dtype_name(m.scales_dtype)) + " (want U8)");
      if (m.biases != nullptr) fail("unexpected biases");
      break;
    case QuantMode::kNone:
      break;
  }
  const auto groups = static_cast<size_t>(m.groups_per_row());
  if (m.rows > 1 && m.scales_row_bytes < groups * dtype_size(m.scales_dtype))
    fail("scales row stride too small");
  if (quant_mode_has_biases(m.spec.mode) && m.rows > 1 &&
      m.biases_row_bytes < groups * dtype_size(m.biases_dtype))
    fail("biases row stride too small");
}

}  // namespace qcoder
