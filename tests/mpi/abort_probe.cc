// A job in which one rank misbehaves, for mpi_cli_test: the others must end the job with a
// clear error within the deadline instead of hanging.
//   abort_probe hang   rank 1 never joins the all-reduce (deadline: 1 s)
//   abort_probe throw  rank 1 fails; it ends the job itself (Communicator::abort)
#include <chrono>
#include <cstring>
#include <iostream>
#include <thread>

#include "dist/communicator.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: abort_probe hang|throw\n";
    return 2;
  }
  qcoder::dist::CommOptions options;
  options.timeout = std::chrono::seconds(1);
  auto world = qcoder::dist::make_world_communicator(options);
  float x = 1.0f;
  if (world->rank() == 1) {
    if (!std::strcmp(argv[1], "throw")) world->abort("rank-specific failure (probe)");
    std::this_thread::sleep_for(std::chrono::seconds(60));  // hangs: never reaches the all-reduce
  }
  world->all_reduce_sum(&x, 1);
  std::cout << "unreachable: the all-reduce completed\n";
  return 0;
}
