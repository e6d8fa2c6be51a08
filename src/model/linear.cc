#include "model/linear.h"

#include <algorithm>
#include <atomic>

namespace qcoder {
namespace {

// Rows per work item: a panel small enough to balance two threads on a 768-row expert and
// large enough that handing it out costs nothing next to streaming its weights.
constexpr int64_t kPanelRows = 16;
// Smallest claim of panels in run_linear_jobs' guided schedule.
constexpr int64_t kMinClaim = 2;
// Jobs with this many tokens or more use the matrix-matrix kernel (kGemmMinTokens in
// kernels/cpu/matmul_int-inl.h) and are split one panel at a time.
constexpr int64_t kBatchTokens = 8;

bool same_format(const QMatrix& a, const QMatrix& b) {
  return a.spec == b.spec && a.cols == b.cols && a.act_bits == b.act_bits;
}

}  // namespace

void prepare_linear_input(const QMatrix& m, const float* X, int64_t n, ops::PreparedActs& out,
                          ThreadPool& pool, const int32_t* row_ids) {
  ops::prepare_acts_init(m, X, n, out, row_ids);
  // Rows are independent; small batches are not worth a parallel region.
  const int64_t min_rows = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, m.cols));
  pool.parallel_for(
      n, [&](int64_t b, int64_t e) { ops::prepare_acts_rows(m, X, out, b, e, row_ids); }, min_rows);
}

void run_linear_jobs(std::span<const LinearJob> jobs, ThreadPool& pool) {
  std::vector<int64_t> first(jobs.size() + 1, 0);  // first panel of each job
  for (size_t j = 0; j < jobs.size(); ++j) {
    const int64_t panels = jobs[j].n_tokens > 0 ? (jobs[j].m->rows + kPanelRows - 1) / kPanelRows : 0;
    first[j + 1] = first[j] + panels;
  }
  const int64_t total = first.back();
  if (total == 0) return;
  // Where panel p's weight codes start (the decode kernels' prefetch continuation).
  const auto rows_of = [&](int64_t p) -> const uint8_t* {
    if (p >= total) return nullptr;
    const size_t j = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), p) - first.begin() - 1);
    const QMatrix& m = *jobs[j].m;
    return m.data + static_cast<size_t>((p - first[j]) * kPanelRows) * m.row_bytes;
  };
  // Panels [a, b) of the concatenated jobs, each job's part as one call (the kernels
  // prefetch ahead within a call, so a thread should own long contiguous runs of rows); each
  // call is told where the thread reads next (the next part, or `then` after the last one).
  const auto run_range = [&](int64_t a, int64_t b, const uint8_t* then) {
    size_t j = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), a) - first.begin() - 1);
    while (a < b) {
      while (first[j + 1] <= a) ++j;
      const LinearJob& job = jobs[j];
      const int64_t e = std::min(b, first[j + 1]);
      const int64_t r0 = (a - first[j]) * kPanelRows;
      const int64_t r1 = std::min(job.m->rows, (e - first[j]) * kPanelRows);
      ops::matmul(*job.m, *job.acts, job.tokens, job.n_tokens, job.Y, job.ldy, r0, r1, e < b ? rows_of(e) : then);
      a = e;
    }
  };
  const int threads = pool.size();
  if (threads <= 1 || total == 1) {
    run_range(0, total, nullptr);
    return;
  }
  // Batches (the matrix-matrix kernel, compute-bound): one panel per item, handed out
  // dynamically, as before the decode work (its balance is measured there).
  int64_t max_tokens = 0;
  for (const LinearJob& job : jobs) max_tokens = std::max(max_tokens, job.n_tokens);
  if (max_tokens >= kBatchTokens) {
    pool.parallel_items(total, [&](int64_t item, int) { run_range(item, item + 1, nullptr); });
    return;
  }
  // Guided schedule: each claim takes 1/(2 * threads) of what is left (at least kMinClaim
  // panels), so threads stream long contiguous runs and still finish together when one of
  // them is slowed down (a shared machine). A thread claims its next run before it reads the
  // current one, so the current one's prefetches can run on into it.
  std::atomic<int64_t> next{0};
  const auto claim = [&](int64_t& a, int64_t& b) {
    a = next.load(std::memory_order_relaxed);
    do {
      if (a >= total) return false;
      b = std::min(total, a + std::max<int64_t>(kMinClaim, (total - a) / (2 * threads)));
    } while (!next.compare_exchange_weak(a, b, std::memory_order_relaxed));
    return true;
  };
  pool.parallel_for(threads, [&](int64_t, int64_t) {
    int64_t a = 0, b = 0;
    if (!claim(a, b)) return;
    for (;;) {
      int64_t na = 0, nb = 0;
      const bool more = claim(na, nb);
      run_range(a, b, more ? rows_of(na) : nullptr);
      if (!more) return;
      a = na;
      b = nb;
    }
  });
}

void apply_linears(std::span<const QMatrix* const> ms, const float* X, int64_t n,
                   std::span<float* const> Ys, ThreadPool& pool) {
  if (n <= 0) return;
  std::vector<ops::PreparedActs> acts;
  std::vector<size_t> which(ms.size());
  std::vector<const QMatrix*> formats;
  for (size_t i = 0; i < ms.size(); ++i) {
    size_t f = 0;
    while (f < formats.size() && !same_format(*formats[f], *ms[i])) ++f;
    if (f == formats.size()) formats.push_back(ms[i]);
    which[i] = f;
  }
  acts.resize(formats.size());
  for (size_t f = 0; f < formats.size(); ++f) prepare_linear_input(*formats[f], X, n, acts[f], pool);
  std::vector<LinearJob> jobs(ms.size());
  for (size_t i = 0; i < ms.size(); ++i)
    jobs[i] = LinearJob{ms[i], &acts[which[i]], nullptr, n, Ys[i], ms[i]->rows};
  run_linear_jobs(jobs, pool);
}

void apply_linear(const QMatrix& m, const float* X, int64_t n, float* Y, ThreadPool& pool) {
  const QMatrix* ms[] = {&m};
  float* ys[] = {Y};
  apply_linears(ms, X, n, ys, pool);
}

}  // namespace qcoder
