// Internal to src/dist: the OpenMPI backend (mpi_communicator.cc) or its stand-in when the
// build has no MPI (mpi_unavailable.cc). Nothing outside src/dist includes this.
#pragma once

#include <memory>

#include "dist/communicator.h"

namespace qcoder::dist {

bool mpi_backend_available();
// Initialises MPI (MPI_THREAD_SERIALIZED) and returns MPI_COMM_WORLD; MPI_Finalize runs when it
// is destroyed. Sub-communicators from split() must be destroyed before it.
std::unique_ptr<Communicator> make_mpi_world_communicator(const CommOptions& options);

}  // namespace qcoder::dist
