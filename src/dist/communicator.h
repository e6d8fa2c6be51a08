// The transport between the ranks of one job, behind a small interface so that nothing outside
// src/dist sees MPI (the layout mlx core's distributed/ uses). Two implementations, chosen when
// the job starts: a single-process one (always built) and OpenMPI (built when CMake finds MPI,
// used when the process was launched by mpirun).
//
// Every operation that waits on another rank runs with a deadline: it is started
// non-blocking, polled (yielding the CPU, so ranks that oversubscribe the cores do not starve
// each other), and when the deadline passes the whole job ends (MPI_Abort) with an error that
// names the operation, the rank and its peer. A failing rank therefore never leaves the
// others hanging. Waits that are idle by design (a follower rank waiting for the next request
// of a server) pass Wait::kForever.
//
// Ranks are 0..size()-1 within this communicator; split() makes sub-communicators (the ranks
// of one pipeline stage). One thread at a time may use the communicators of a process (any
// thread: a server's engine thread may drive them).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qcoder::dist {

struct CommOptions {
  // Deadline of one operation; 0 = none. The default is generous because a stage may wait on
  // the previous one through a whole prefill chunk.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

enum class Wait { kDeadline, kForever };

// A send in flight; the buffer must stay alive and unchanged until wait() returns.
class PendingSend {
 public:
  virtual ~PendingSend() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "local" or "mpi"

  // Point to point, raw bytes. Messages between one pair of ranks with one tag arrive in order.
  virtual void send(const void* data, size_t bytes, int dest, int tag) = 0;
  virtual std::unique_ptr<PendingSend> send_async(const void* data, size_t bytes, int dest,
                                                  int tag) = 0;
  virtual void recv(void* data, size_t bytes, int src, int tag, Wait wait = Wait::kDeadline) = 0;

  virtual void broadcast(void* data, size_t bytes, int root, Wait wait = Wait::kDeadline) = 0;
  // out receives size() blocks of `bytes`, block r from rank r.
  virtual void all_gather(const void* in, size_t bytes, void* out) = 0;
  // data[i] = sum over ranks of data[i], added in rank order 0, 1, ... in float32 (so every
  // rank gets the same bits, whatever the MPI library's reduction algorithm would do).
  virtual void all_reduce_sum(float* data, size_t n);
  virtual void barrier() = 0;

  // Ranks with the same color form a new communicator, ordered by key (then by rank).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  // Ends the whole job: prints "qcoder: rank R of N: error: MESSAGE" on stderr, then
  // MPI_Abort (or exit(1) in a single process).
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  // Statistics of the operations that waited on other ranks (for the scaling report).
  struct Stats {
    int64_t operations = 0;
    uint64_t bytes = 0;           // payload sent or contributed
    double wait_seconds = 0;      // time inside operations (transfer + waiting for peers)
    double wait_cpu_seconds = 0;  // CPU time of the calling thread inside them (polling)
  };
  const Stats& stats() const { return stats_; }
  void reset_stats() { stats_ = Stats{}; }

 protected:
  Stats stats_;
};

// The communicator of the whole job: MPI when this build has it and the process was started
// by an MPI launcher (mpirun sets OMPI_COMM_WORLD_SIZE / PMIX_RANK), else a single process.
std::unique_ptr<Communicator> make_world_communicator(const CommOptions& options = {});
// A single-process communicator (rank 0 of 1).
std::unique_ptr<Communicator> make_local_communicator();

bool built_with_mpi();
// True when an MPI launcher started this process (whether or not this build can use it).
bool launched_by_mpi();

// Where the ranks run: node_of_rank[r] is the index of rank r's host (in order of first
// appearance), and mem_available[r] that host's MemAvailable in bytes (0 if unknown).
struct Topology {
  std::vector<int> node_of_rank;
  std::vector<uint64_t> mem_available;
  int nodes() const;
  int ranks_on_node(int node) const;
};
// Collective: every rank contributes its host name and memory.
Topology gather_topology(Communicator& comm);

}  // namespace qcoder::dist
