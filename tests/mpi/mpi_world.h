// The job's communicator for tests run under mpirun (mpi_main.cc creates it before the tests).
// Every rank runs every test in the same order, so collectives inside tests stay matched; put
// comparisons after a test's collectives (EXPECT, not ASSERT, inside collective sections).
#pragma once

#include "dist/communicator.h"

namespace qcoder::testing {

dist::Communicator& world();

}  // namespace qcoder::testing
