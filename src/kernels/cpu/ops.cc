// Dynamic dispatch of the SIMD kernels: this file is compiled once per Highway target
// (foreach_target re-includes it), and the public functions of kernels/ops.h call the best
// target the CPU supports (HWY_DYNAMIC_DISPATCH).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/ops.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/cpu/attention-inl.h"
#include "kernels/cpu/kv_encode-inl.h"
#include "kernels/cpu/matmul_int-inl.h"
#include "kernels/cpu/ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace qcoder::HWY_NAMESPACE {

const char* TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

}  // namespace qcoder::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qcoder {
HWY_EXPORT(TargetNameImpl);
HWY_EXPORT(PrepareActsImpl);
HWY_EXPORT(PrepareActsInitImpl);
HWY_EXPORT(PrepareActsRowsImpl);
HWY_EXPORT(MatMulImpl);
HWY_EXPORT(RmsNormImpl);
HWY_EXPORT(RopeImpl);
HWY_EXPORT(SoftmaxImpl);
HWY_EXPORT(SwigluImpl);
HWY_EXPORT(AxpyImpl);
HWY_EXPORT(ReadSweepImpl);
HWY_EXPORT(AttentionWorkImpl);
HWY_EXPORT(AttentionItemImpl);
HWY_EXPORT(AttentionCombineImpl);
HWY_EXPORT(KvDecodeImpl);
HWY_EXPORT(KvEncodeRowImpl);

namespace ops {

std::string active_target() { return HWY_DYNAMIC_DISPATCH(TargetNameImpl)(); }

void prepare_acts(const QMatrix& m, const float* X, int64_t rows, PreparedActs& out,
                  const int32_t* row_ids) {
  HWY_DYNAMIC_DISPATCH(PrepareActsImpl)(m, X, rows, out, row_ids);
}

void prepare_acts_init(const QMatrix& m, const float* X, int64_t rows, PreparedActs& out,
                       const int32_t* row_ids) {
  HWY_DYNAMIC_DISPATCH(PrepareActsInitImpl)(m, X, rows, out, row_ids);
}

void prepare_acts_rows(const QMatrix& m, const float* X, PreparedActs& out, int64_t row_begin,
                       int64_t row_end, const int32_t* row_ids) {
  HWY_DYNAMIC_DISPATCH(PrepareActsRowsImpl)(m, X, out, row_begin, row_end, row_ids);
}

void matmul(const QMatrix& m, const PreparedActs& acts, const int32_t* tokens, int64_t n_tokens,
            float* Y, int64_t ldy, int64_t row_begin, int64_t row_end, const uint8_t* next_rows) {
  HWY_DYNAMIC_DISPATCH(MatMulImpl)(m, acts, tokens, n_tokens, Y, ldy, row_begin, row_end, next_rows);
}

void rms_norm(const float* x, const float* w, int64_t n, double eps, float* y) {
  HWY_DYNAMIC_DISPATCH(RmsNormImpl)(x, w, n, eps, y);
}

void rope_rotate_half(float* x, int64_t dim, const float* cos, const float* sin) {
  HWY_DYNAMIC_DISPATCH(RopeImpl)(x, dim, cos, sin);
}

void softmax(float* x, int64_t n) { HWY_DYNAMIC_DISPATCH(SoftmaxImpl)(x, n); }

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SwigluImpl)(gate, up, n, out);
}

void axpy(float a, const float* x, int64_t n, float* y) { HWY_DYNAMIC_DISPATCH(AxpyImpl)(a, x, n, y); }

uint64_t read_sweep(const uint8_t* p, size_t n) { return HWY_DYNAMIC_DISPATCH(ReadSweepImpl)(p, n); }

AttentionWork attention_work(const AttentionShape& s, int64_t n_q, int64_t n_keys) {
  return HWY_DYNAMIC_DISPATCH(AttentionWorkImpl)(s, n_q, n_keys);
}

void attention_item(const AttentionShape& s, const float* q, int64_t n_q, int64_t n_keys,
                    const uint8_t* const* k_rows, const uint8_t* const* v_rows, float* out,
                    float* partials, int64_t item, std::vector<float>& scratch) {
  HWY_DYNAMIC_DISPATCH(AttentionItemImpl)(s, q, n_q, n_keys, k_rows, v_rows, out, partials, item, scratch);
}

void attention_combine(const AttentionShape& s, int64_t n_q, int64_t n_keys, const float* partials,
                       float* out, int64_t item) {
  HWY_DYNAMIC_DISPATCH(AttentionCombineImpl)(s, n_q, n_keys, partials, out, item);
}

void kv_decode(const KvFormat& f, const uint8_t* row, int64_t n, int64_t begin, int64_t count,
               float* out) {
  HWY_DYNAMIC_DISPATCH(KvDecodeImpl)(f, row, n, begin, count, out);
}

void kv_encode_row(const KvFormat& f, const float* x, int64_t n, uint8_t* row) {
  HWY_DYNAMIC_DISPATCH(KvEncodeRowImpl)(f, x, n, row);
}

}  // namespace ops
}  // namespace qcoder
#endif  // HWY_ONCE
