// The OpenMPI backend. Every operation is a non-blocking MPI call polled with MPI_Testall until
// it completes or its deadline passes (then MPI_Abort with a message naming the operation).
// Payloads travel as MPI_BYTE in chunks of at most 1 GiB (MPI counts are int).
#include "dist/mpi_communicator.h"

#include <mpi.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"

namespace qcoder::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kChunk = size_t{1} << 30;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::string seconds_text(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool is_world, const CommOptions& options)
      : comm_(comm), is_world_(is_world), options_(options) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
  }

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (is_world_) {
      // MPI_Finalize waits for every rank; a rank that never gets there must not hang the
      // others, so meet in a barrier with a deadline first.
      MPI_Request req;
      MPI_Ibarrier(comm_, &req);
      wait(&req, 1, "the final barrier (MPI_Finalize)", -1, Wait::kDeadline, 0);
      MPI_Finalize();
    } else {
      MPI_Comm_free(&comm_);
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void send(const void* data, size_t bytes, int dest, int tag) override {
    send_async(data, bytes, dest, tag)->wait();
  }

  std::unique_ptr<PendingSend> send_async(const void* data, size_t bytes, int dest,
                                          int tag) override {
    check_peer(dest, "send to");
    auto pending = std::make_unique<Pending>(this, dest);
    const auto* p = static_cast<const char*>(data);
    for (size_t off = 0; off < bytes || off == 0; off += kChunk) {
      const int n = static_cast<int>(std::min(kChunk, bytes - off));
      pending->reqs.emplace_back();
      MPI_Isend(p + off, n, MPI_BYTE, dest, tag, comm_, &pending->reqs.back());
      if (bytes == 0) break;
    }
    stats_.bytes += bytes;
    return pending;
  }

  void recv(void* data, size_t bytes, int src, int tag, Wait w) override {
    check_peer(src, "receive from");
    auto* p = static_cast<char*>(data);
    std::vector<MPI_Request> reqs;
    for (size_t off = 0; off < bytes || off == 0; off += kChunk) {
      const int n = static_cast<int>(std::min(kChunk, bytes - off));
      reqs.emplace_back();
      MPI_Irecv(p + off, n, MPI_BYTE, src, tag, comm_, &reqs.back());
      if (bytes == 0) break;
    }
    wait(reqs.data(), static_cast<int>(reqs.size()), "receive", src, w, bytes);
  }

  void broadcast(void* data, size_t bytes, int root, Wait w) override {
    check_peer(root, "broadcast from");
    auto* p = static_cast<char*>(data);
    for (size_t off = 0; off < bytes; off += kChunk) {
      MPI_Request req;
      MPI_Ibcast(p + off, static_cast<int>(std::min(kChunk, bytes - off)), MPI_BYTE, root, comm_,
                 &req);
      wait(&req, 1, "broadcast", root, w, rank_ == root ? std::min(kChunk, bytes - off) : 0);
    }
  }

  void all_gather(const void* in, size_t bytes, void* out) override {
    if (bytes * static_cast<size_t>(size_) > kChunk) {
      // Large: one broadcast per rank (rare: only prefill of very long prompts gets here).
      auto* o = static_cast<char*>(out);
      std::copy_n(static_cast<const char*>(in), bytes, o + static_cast<size_t>(rank_) * bytes);
      for (int r = 0; r < size_; ++r)
        broadcast(o + static_cast<size_t>(r) * bytes, bytes, r, Wait::kDeadline);
      return;
    }
    MPI_Request req;
    MPI_Iallgather(in, static_cast<int>(bytes), MPI_BYTE, out, static_cast<int>(bytes), MPI_BYTE,
                   comm_, &req);
    wait(&req, 1, "all-gather", -1, Wait::kDeadline, bytes);
  }

  void barrier() override {
    MPI_Request req;
    MPI_Ibarrier(comm_, &req);
    wait(&req, 1, "barrier", -1, Wait::kDeadline, 0);
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    barrier();  // MPI_Comm_split blocks: make sure every rank is there before calling it
    MPI_Comm sub;
    MPI_Comm_split(comm_, color, key, &sub);
    return std::make_unique<MpiCommunicator>(sub, false, options_);
  }

  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "qcoder: rank %d of %d: error: %s\n", world_rank_, world_size_,
                 message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);  // MPI_Abort does not return; keep [[noreturn]] honest if it does
  }

 private:
  struct Pending final : PendingSend {
    Pending(MpiCommunicator* c, int d) : comm(c), dest(d) {}
    ~Pending() override {
      if (!reqs.empty()) wait();
    }
    void wait() override {
      if (reqs.empty()) return;
      comm->wait(reqs.data(), static_cast<int>(reqs.size()), "send", dest, Wait::kDeadline, 0);
      reqs.clear();
    }
    MpiCommunicator* comm;
    int dest;
    std::vector<MPI_Request> reqs;
  };

  void check_peer(int peer, const char* what) const {
    if (peer < 0 || peer >= size_)
      throw Error("cannot " + std::string(what) + " rank " + std::to_string(peer) +
                  ": the group has " + std::to_string(size_) + " ranks");
  }

  // Polls until every request completes. Spins (yielding the core) for the first
  // millisecond, then sleeps in growing steps up to 0.5 ms so idle ranks cost no CPU.
  void wait(MPI_Request* reqs, int n, const char* what, int peer, Wait w, size_t bytes) {
    const auto start = Clock::now();
    const double cpu_start = thread_cpu_seconds();
    long sleep_ns = 20'000;
    for (;;) {
      int done = 0;
      MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
      if (done) break;
      const auto waited = Clock::now() - start;
      if (w == Wait::kDeadline && options_.timeout.count() > 0 && waited > options_.timeout) {
        std::string msg =
            std::string(what) + " did not complete within " + seconds_text(options_.timeout);
        if (peer >= 0)
          msg += " (waiting for rank " + std::to_string(peer) + " of this group of " +
                 std::to_string(size_) + ")";
        else
          msg += size_ == 2 ? " (waiting for the other rank of this group)"
                            : " (waiting for the other " + std::to_string(size_ - 1) +
                                  " ranks of this group)";
        abort(msg + "; a rank has failed or hangs, so the job ends");
      }
      if (waited < std::chrono::milliseconds(1)) {
        sched_yield();
      } else {
        timespec ts{0, sleep_ns};
        nanosleep(&ts, nullptr);
        sleep_ns = std::min<long>(sleep_ns * 2, 500'000);
      }
    }
    ++stats_.operations;
    stats_.bytes += bytes;
    stats_.wait_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    stats_.wait_cpu_seconds += thread_cpu_seconds() - cpu_start;
  }

  MPI_Comm comm_;
  bool is_world_;
  CommOptions options_;
  int rank_ = 0, size_ = 1, world_rank_ = 0, world_size_ = 1;
};

}  // namespace

bool mpi_backend_available() { return true; }

std::unique_ptr<Communicator> make_mpi_world_communicator(const CommOptions& options) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) throw Error("MPI is already initialised (one world communicator per process)");
  // SERIALIZED: any one thread at a time may call MPI (a server's engine thread drives the
  // collectives while main() serves HTTP); the thread pool's workers never do.
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    throw Error("MPI_Init_thread failed");
  if (provided < MPI_THREAD_SERIALIZED)
    throw Error("this MPI library does not support MPI_THREAD_SERIALIZED (got level " +
                std::to_string(provided) + ")");
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, true, options);
}

}  // namespace qcoder::dist
