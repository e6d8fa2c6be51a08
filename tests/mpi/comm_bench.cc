// Times the communicator's operations at the sizes one decoded token needs (docs/DISTRIBUTED.md):
// a hand-off of one activation row between ranks, the all-reduce of one row, the step
// command's broadcast and the logits row. Minimum and median over many repetitions.
//   mpirun -np N comm_bench [HIDDEN] [VOCAB] [REPEATS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "dist/communicator.h"

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
void time_it(qcoder::dist::Communicator& w, const char* name, size_t bytes, int repeats, F&& op) {
  std::vector<double> us;
  for (int i = 0; i < repeats + 10; ++i) {
    w.barrier();
    const auto s = Clock::now();
    op();
    const double t = std::chrono::duration<double, std::micro>(Clock::now() - s).count();
    if (i >= 10) us.push_back(t);  // the first ones warm up connections
  }
  std::sort(us.begin(), us.end());
  double worst_min = us.front(), worst_med = us[us.size() / 2];
  std::vector<double> mins(static_cast<size_t>(w.size())), meds(mins.size());
  w.all_gather(&worst_min, sizeof(double), mins.data());
  w.all_gather(&worst_med, sizeof(double), meds.data());
  if (w.rank() == 0)
    std::printf("%-34s %9zu bytes  min %8.1f us  median %8.1f us\n", name, bytes,
                *std::max_element(mins.begin(), mins.end()),
                *std::max_element(meds.begin(), meds.end()));
}

}  // namespace

int main(int argc, char** argv) {
  const size_t hidden = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 6144;
  const size_t vocab = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 151936;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 200;
  auto w = qcoder::dist::make_world_communicator();
  std::vector<float> row(hidden, 1.0f), logits(vocab, 1.0f);
  if (w->rank() == 0)
    std::printf("%d ranks (%s), hidden %zu, vocab %zu, %d repetitions\n", w->size(),
                w->backend().c_str(), hidden, vocab, repeats);
  const int last = w->size() - 1;
  time_it(*w, "hand-off: rank 0 -> 1 (one row)", hidden * 4, repeats, [&] {
    if (w->rank() == 0) w->send(row.data(), hidden * 4, 1, 1);
    if (w->rank() == 1) w->recv(row.data(), hidden * 4, 0, 1);
  });
  time_it(*w, "all-reduce of one row", hidden * 4, repeats,
          [&] { w->all_reduce_sum(row.data(), hidden); });
  int64_t command[64] = {};
  time_it(*w, "step command broadcast", sizeof command, repeats,
          [&] { w->broadcast(command, sizeof command, 0); });
  time_it(*w, "logits: last rank -> 0", vocab * 4, repeats, [&] {
    if (w->rank() == last) w->send(logits.data(), vocab * 4, 0, 2);
    if (w->rank() == 0) w->recv(logits.data(), vocab * 4, last, 2);
  });
  return 0;
}
