#include "kernels/reference/kv_ref.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "kernels/reference/ops.h"

namespace qcoder::ref {

KvGroupAffine kv_group_affine(float wmin, float wmax, float levels) {
  float s = std::max((wmax - wmin) / levels, 1e-7f);
  const bool side = std::fabs(wmin) > std::fabs(wmax);
  s = side ? s : -s;
  const float edge = side ? wmin : wmax;
  const float q0 = std::rint(edge / s);
  float bias = 0.0f;
  if (q0 != 0.0f) {
    s = edge / q0;
    bias = edge;
  }
  return {s, bias};
}

namespace {

void quantize_group(const float* x, int64_t g, int bits, uint8_t* packed_row, int64_t first,
                    uint16_t* scale_out, uint16_t* bias_out) {
  const float levels = static_cast<float>((1 << bits) - 1);
  float wmin = x[0], wmax = x[0];
  for (int64_t i = 1; i < g; ++i) {
    wmin = std::min(wmin, x[i]);
    wmax = std::max(wmax, x[i]);
  }
  const KvGroupAffine affine = kv_group_affine(wmin, wmax, levels);
  const float s = affine.scale, bias = affine.bias;
  for (int64_t i = 0; i < g; ++i) {
    const float q = std::clamp(std::rint((x[i] - bias) / s), 0.0f, levels);
    const uint32_t v = static_cast<uint32_t>(q);
    const int64_t e = first + i;
    if (bits == 8) {
      packed_row[e] = static_cast<uint8_t>(v);
    } else {  // 4: byte j of the group holds element j (low nibble) and j + g/2 (high nibble)
      uint8_t& byte = packed_row[first / 2 + i % (g / 2)];
      byte = static_cast<uint8_t>(i >= g / 2 ? ((byte & 0x0f) | (v << 4)) : ((byte & 0xf0) | v));
    }
  }
  *scale_out = f32_to_bf16(s);
  *bias_out = f32_to_bf16(bias);
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

void kv_encode_row(const KvFormat& f, const float* x, int64_t n, uint8_t* row) {
  switch (f.dtype) {
    case KvDtype::kF32:
      std::memcpy(row, x, static_cast<size_t>(n) * 4);
      return;
    case KvDtype::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(row + 2 * i, &h, 2);
      }
      return;
    case KvDtype::kQ8:
    case KvDtype::kQ4: {
      const int bits = f.bits();
      const int64_t groups = n / f.group;
      uint8_t* scales = row + n * bits / 8;
      uint8_t* biases = scales + 2 * groups;
      for (int64_t gi = 0; gi < groups; ++gi) {
        uint16_t s, b;
        quantize_group(x + gi * f.group, f.group, bits, row, gi * f.group, &s, &b);
        std::memcpy(scales + 2 * gi, &s, 2);
        std::memcpy(biases + 2 * gi, &b, 2);
      }
      return;
    }
  }
}

void kv_decode(const KvFormat& f, const uint8_t* row, int64_t n, int64_t begin, int64_t count,
               float* out) {
  switch (f.dtype) {
    case KvDtype::kF32:
      std::memcpy(out, row + 4 * begin, static_cast<size_t>(count) * 4);
      return;
    case KvDtype::kBF16:
      for (int64_t i = 0; i < count; ++i) out[i] = bf16_to_f32(load_u16(row + 2 * (begin + i)));
      return;
    case KvDtype::kQ8:
    case KvDtype::kQ4: {
      assert(begin % f.group == 0 && count % f.group == 0);
      const int bits = f.bits();
      const uint8_t* scales = row + n * bits / 8;
      const uint8_t* biases = scales + 2 * (n / f.group);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t e = begin + i, gi = e / f.group;
        const float s = bf16_to_f32(load_u16(scales + 2 * gi));
        const float b = bf16_to_f32(load_u16(biases + 2 * gi));
        const int64_t half = f.group / 2, j = e - gi * f.group;
        const uint32_t q = bits == 8 ? row[e]
                                     : ((row[gi * half + j % half] >> (j >= half ? 4 : 0)) & 0x0fu);
        const float sq = s * static_cast<float>(q);  // separate statements: no fma (see
        out[i] = sq + b;                              // kernels/reference/quant_ref.cc)
      }
      return;
    }
  }
}

void attend_one_head_kv(const KvFormat& f, const float* q, const uint8_t* const* k_rows,
                        const uint8_t* const* v_rows, int64_t row_elems, int64_t offset,
                        int64_t n_keys, int64_t head_dim, float scale, float* scratch, float* out) {
  std::vector<float> keys(static_cast<size_t>(n_keys * head_dim));
  std::vector<float> vals(keys.size());
  std::vector<const float*> kp(static_cast<size_t>(n_keys)), vp(kp.size());
  for (int64_t t = 0; t < n_keys; ++t) {
    kv_decode(f, k_rows[t], row_elems, offset, head_dim, &keys[t * head_dim]);
    kv_decode(f, v_rows[t], row_elems, offset, head_dim, &vals[t * head_dim]);
    kp[t] = &keys[t * head_dim];
    vp[t] = &vals[t * head_dim];
  }
  attend_one_head(q, kp.data(), vp.data(), 0, n_keys, head_dim, scale, scratch, out);
}

}  // namespace qcoder::ref
