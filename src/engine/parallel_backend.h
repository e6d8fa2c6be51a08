// The engine's forward steps over a model spread across the ranks of an MPI job (`mpirun ...
// qcoder serve --parallel ...`): this process is rank 0, the leader; the other ranks sit in
// ParallelRunner::follow(). The engine's KV pool and prefix cache stay here; each step carries
// its block tables and the pool's copies on write to the followers, whose mirror pools hold
// their layers' and heads' share of the same blocks (model/parallel_runner.h).
#pragma once

#include <memory>

#include "engine/forward_backend.h"
#include "model/parallel_runner.h"

namespace qcoder::engine {

// runner: the leader's, outliving the engine.
std::unique_ptr<ForwardBackend> make_parallel_backend(ParallelRunner& runner);

}  // namespace qcoder::engine
