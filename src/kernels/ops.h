// The SIMD kernels of the forward pass (Highway, one binary for every x86 level; the best
// target the CPU supports is picked at run time). Each op has a scalar oracle in reference/
// and is tested against it on every compiled target (tests/kernels/simd_*_test.cc).
//
// Invariance: an output row depends only on its own inputs, never on how many rows are in
// the call, how they are split between threads, or which path (matrix-vector or
// matrix-matrix) computed it. Quantized products make that cheap: the per-group dot products
// are exact integer sums, and the float epilogue runs in one fixed order per row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kv_format.h"
#include "kernels/qmatrix.h"

namespace qcoder::ops {

// Name of the Highway target in use ("AVX3_DL", "AVX2", ...).
std::string active_target();

// ---------------------------------------------------------------------------------------
// Activations prepared for one weight format. For the integer path (affine, mxfp4, nvfp4),
// each row of X is quantized per weight group to int16: x ~= sx[g] * xi, |x - sx*xi| <= sx/2
// with sx = max|x over the group| / 32639 (about 15 significant bits: the result stays within
// ~1e-5 relative of float32, far inside the 5e-3 sigma gate; 32639 rather than 32767 so that
// every xi splits exactly into two int8 planes, xi = 256 * xh + xl). With m.act_bits == 8
// (--fast) the bound is 127 instead: xi fits one int8 plane, and every kernel computes the
// same exact integer sums from it (the int16 kernels on xi, the VNNI ones on x8 / planes), so
// a row's bits still do not depend on the target's path. Each group's dot product with the
// weight codes is then an exact int32 sum. Other formats (float weights, mxfp8, ...) keep
// float32 activations.
struct PreparedActs {
  bool integer = false;
  int64_t rows = 0, cols = 0, groups = 0;
  int group_size = 0;
  int perm = 1;                 // 1: natural order; 2: even/odd lanes de-interleaved per chunk
  int chunk = 0;                // elements per permutation chunk (perm 2)
  std::vector<int16_t> xi;      // [rows, cols], permuted as above
  std::vector<float> sx;        // [rows, groups]: scale per group
  std::vector<float> xsum;      // [rows, groups]: sx * sum(xi) over the group
  int act_bits = 16;            // 16, or 8 (|xi| <= 127)
  // 4-bit weights on AVX512-VNNI: xi again as int8 planes, per block of 128 elements
  // [xh even | xh odd | xl even | xl odd] (64 bytes each), for vpdpbusd on raw nibbles; with
  // act_bits 8 one plane [x even | x odd] per block.
  std::vector<int8_t> planes;   // [rows, 2 * cols], [rows, cols] (act_bits 8) or empty
  // Affine weights on AVX512-VNNI: xi as int8 planes in the same order, for the matrix-matrix
  // kernel's u8 x s8 products: per row [xh | xl] (xi = 256 * xh + xl), or xi itself with
  // act_bits 8.
  std::vector<int8_t> x8;       // [rows, 2 * cols], [rows, cols] (act_bits 8) or empty
  const float* xf = nullptr;    // float path: X itself [rows, cols] (not owned)
  std::vector<float> xf_store;  // float path when X must be copied (gathered rows)
};

// Prepares X [rows, cols] for products with matrices of m's format (m.spec, m.cols).
// `row_ids` (optional, `rows` entries) gathers rows of X: prepared row i is X[row_ids[i]].
void prepare_acts(const QMatrix& m, const float* X, int64_t rows, PreparedActs& out,
                  const int32_t* row_ids = nullptr);
// The same in two steps, so rows can be prepared in parallel: init sizes `out` for `rows`
// rows; prepare_acts_rows fills rows [row_begin, row_end) (X and row_ids as above).
void prepare_acts_init(const QMatrix& m, const float* X, int64_t rows, PreparedActs& out,
                       const int32_t* row_ids = nullptr);
void prepare_acts_rows(const QMatrix& m, const float* X, PreparedActs& out, int64_t row_begin,
                       int64_t row_end, const int32_t* row_ids = nullptr);

// Y[t * ldy + r] = sum_c W[r, c] * x[c] for the prepared rows x = acts row tokens[t] (or row
// t when tokens is null), t in [0, n_tokens), and r in [row_begin, row_end). Runs on the
// calling thread (callers split rows between threads). `next_rows` (optional) is where this
// thread's next call will start reading weight codes: the decode kernels, which prefetch a
// fixed distance ahead, carry their prefetches on into it near the end of this call instead
// of past their last row, so the next call does not start on cold memory. It changes no result.
void matmul(const QMatrix& m, const PreparedActs& acts, const int32_t* tokens, int64_t n_tokens,
            float* Y, int64_t ldy, int64_t row_begin, int64_t row_end, const uint8_t* next_rows = nullptr);

// ---------------------------------------------------------------------------------------
// Elementwise and row ops (float32). Reductions run in float32 SIMD lanes in a fixed order.

// y = x / sqrt(mean(x^2) + eps) * w over n values; y may alias x.
void rms_norm(const float* x, const float* w, int64_t n, double eps, float* y);
// Rotate-half RoPE in place on one head of `dim` values with cos/sin [dim/2].
void rope_rotate_half(float* x, int64_t dim, const float* cos, const float* sin);
// In-place softmax over n values (max subtracted).
void softmax(float* x, int64_t n);
// out[i] = silu(gate[i]) * up[i]; out may alias gate.
void swiglu(const float* gate, const float* up, int64_t n, float* out);
// y[i] += a * x[i]
void axpy(float a, const float* x, int64_t n, float* y);
// Reads n bytes (a multiple of 256, p 64-byte aligned) and returns a checksum: the read
// bandwidth probe of `qcoder bench`.
uint64_t read_sweep(const uint8_t* p, size_t n);

// ---------------------------------------------------------------------------------------
// Causal GQA attention for one sequence. Queries are n_q consecutive positions ending at
// position n_keys - 1 (query i sits at position n_keys - n_q + i and sees keys 0..that
// position). q: [n_q, n_heads, head_dim]; out likewise. Keys/values are reached one position
// at a time: k_rows[t] / v_rows[t] point at position t's row [n_kv_heads, head_dim] (rows of
// different positions need not be contiguous). Query head h uses KV head h / (n_heads /
// n_kv_heads). Each (kv head, query tile) reads its keys once for all the query heads of the
// group. Keys are processed in chunks of kAttnChunk absolute positions, each in blocks of
// kAttnBlock, with an online softmax combined in block order inside a chunk and in chunk order
// across chunks, so a query's result is the same whatever n_q is (decode or prefill) and
// whatever the threads. Decode calls (few queries, more than one chunk) run the chunks as
// separate items (flash-decoding) and need a combine pass.
constexpr int64_t kAttnBlock = 64;
constexpr int64_t kAttnChunk = 512;  // a multiple of kAttnBlock

struct AttentionShape {
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 1.0f;
  // The stored row format (kernels/kv_format.h): k_rows[t] / v_rows[t] point at a row of
  // n_kv_heads * head_dim elements in it, decoded on the fly one key block at a time.
  KvFormat kv{KvDtype::kF32};
};

// The work of one call: the caller runs attention_item(i) for i in [0, items) in any order, on
// any threads, then (when combine_items > 0) attention_combine(i) for i in [0, combine_items),
// likewise. partials: partial_floats floats of caller memory shared by the two phases (none
// needed when 0). scratch: per-thread buffer (resized as needed).
struct AttentionWork {
  int64_t items = 0, combine_items = 0, partial_floats = 0;
};
AttentionWork attention_work(const AttentionShape& s, int64_t n_q, int64_t n_keys);
void attention_item(const AttentionShape& s, const float* q, int64_t n_q, int64_t n_keys,
                    const uint8_t* const* k_rows, const uint8_t* const* v_rows, float* out,
                    float* partials, int64_t item, std::vector<float>& scratch);
void attention_combine(const AttentionShape& s, int64_t n_q, int64_t n_keys, const float* partials,
                       float* out, int64_t item);
// The SIMD row decoder the attention kernel uses: bitwise equal to ref::kv_decode.
void kv_decode(const KvFormat& f, const uint8_t* row, int64_t n, int64_t begin, int64_t count,
               float* out);
// The SIMD row encoder KvCache::store uses: n float32 -> one stored row (kv_row_bytes(f, n)
// bytes), bitwise equal to ref::kv_encode_row for every input (kernels/cpu/kv_encode-inl.h).
void kv_encode_row(const KvFormat& f, const float* x, int64_t n, uint8_t* row);

}  // namespace qcoder::ops
