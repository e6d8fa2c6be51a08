// gtest main for the tests launched by ctest as `mpirun -np N mpi_tests`: every rank runs the
// tests; only rank 0 prints gtest's report; the job fails when any rank fails.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "mpi/mpi_world.h"

namespace qcoder::testing {
namespace {
dist::Communicator* g_world = nullptr;
}  // namespace

dist::Communicator& world() { return *g_world; }

}  // namespace qcoder::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  qcoder::dist::CommOptions options;
  options.timeout =
      std::chrono::seconds(120);  // a mismatched collective fails the job, never hangs it
  std::unique_ptr<qcoder::dist::Communicator> world =
      qcoder::dist::make_world_communicator(options);
  qcoder::testing::g_world = world.get();
  if (world->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int mine = RUN_ALL_TESTS();
  std::vector<int> all(static_cast<size_t>(world->size()));
  world->all_gather(&mine, sizeof mine, all.data());
  int failed = 0;
  for (int r = 0; r < world->size(); ++r)
    if (all[static_cast<size_t>(r)] != 0) failed = 1;
  world.reset();  // MPI_Finalize
  return failed;
}
