// This build has no MPI: only the single-process communicator exists.
#include "core/error.h"
#include "dist/mpi_communicator.h"

namespace qcoder::dist {

bool mpi_backend_available() { return false; }

std::unique_ptr<Communicator> make_mpi_world_communicator(const CommOptions&) {
  throw Error("this qcoder was built without MPI");
}

}  // namespace qcoder::dist
