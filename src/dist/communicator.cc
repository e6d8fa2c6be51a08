#include "dist/communicator.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "dist/mpi_communicator.h"

namespace qcoder::dist {
namespace {

// Rank 0 of 1. Collectives are identities; there is no peer to send to.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }

  void send(const void*, size_t, int dest, int) override { no_peer("send to", dest); }
  std::unique_ptr<PendingSend> send_async(const void*, size_t, int dest, int) override {
    no_peer("send to", dest);
  }
  void recv(void*, size_t, int src, int, Wait) override { no_peer("receive from", src); }
  void broadcast(void*, size_t, int root, Wait) override {
    if (root != 0) no_peer("broadcast from", root);
  }
  void all_gather(const void* in, size_t bytes, void* out) override {
    if (bytes) std::memcpy(out, in, bytes);
  }
  void all_reduce_sum(float*, size_t) override {}
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override { return make_local_communicator(); }
  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "qcoder: error: %s\n", message.c_str());
    std::fflush(stderr);
    std::_Exit(1);
  }

 private:
  [[noreturn]] static void no_peer(const char* what, int peer) {
    throw Error("single-process communicator: cannot " + std::string(what) + " rank " +
                std::to_string(peer));
  }
};

uint64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

}  // namespace

void Communicator::all_reduce_sum(float* data, size_t n) {
  const int p = size();
  if (p == 1 || n == 0) return;
  // Gather every rank's partial, then add them in rank order: the same bits on every rank.
  std::vector<float> all(n * static_cast<size_t>(p));
  all_gather(data, n * sizeof(float), all.data());
  std::copy(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), data);
  for (int r = 1; r < p; ++r) {
    const float* part = &all[static_cast<size_t>(r) * n];
    for (size_t i = 0; i < n; ++i) data[i] += part[i];
  }
}

std::unique_ptr<Communicator> make_local_communicator() {
  return std::make_unique<LocalCommunicator>();
}

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
    if (const char* v = std::getenv(var); v && *v) return true;
  return false;
}

bool built_with_mpi() { return mpi_backend_available(); }

std::unique_ptr<Communicator> make_world_communicator(const CommOptions& options) {
  if (launched_by_mpi()) {
    if (!built_with_mpi())
      throw Error(
          "started by an MPI launcher, but this qcoder was built without MPI "
          "(install libopenmpi-dev and rebuild)");
    return make_mpi_world_communicator(options);
  }
  return make_local_communicator();
}

int Topology::nodes() const {
  return node_of_rank.empty() ? 0 : *std::max_element(node_of_rank.begin(), node_of_rank.end()) + 1;
}

int Topology::ranks_on_node(int node) const {
  return static_cast<int>(std::count(node_of_rank.begin(), node_of_rank.end(), node));
}

Topology gather_topology(Communicator& comm) {
  // One fixed-size record per rank: host name, then MemAvailable.
  constexpr size_t kHost = 256;
  struct Record {
    char host[kHost];
    uint64_t mem;
  };
  Record mine{};
  if (const char* fake = std::getenv("QCODER_FAKE_HOST"); fake && *fake) {
    // For tests: pretend ranks are on different machines ("%r" = the rank).
    std::string h = fake;
    if (auto at = h.find("%r"); at != std::string::npos)
      h.replace(at, 2, std::to_string(comm.rank()));
    std::snprintf(mine.host, kHost, "%s", h.c_str());
  } else if (::gethostname(mine.host, kHost - 1) != 0) {
    std::snprintf(mine.host, kHost, "unknown");
  }
  mine.mem = mem_available_bytes();
  std::vector<Record> all(static_cast<size_t>(comm.size()));
  comm.all_gather(&mine, sizeof mine, all.data());
  Topology t;
  std::map<std::string, int> index;
  for (const Record& r : all) {
    const std::string host(r.host, strnlen(r.host, kHost));
    auto [it, fresh] = index.emplace(host, static_cast<int>(index.size()));
    t.node_of_rank.push_back(it->second);
    t.mem_available.push_back(r.mem);
  }
  return t;
}

}  // namespace qcoder::dist
