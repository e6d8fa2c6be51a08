// Running the Python reference (the repo-local venv) from tests. Skipped, with the reason
// printed, only when QCODER_SKIP_PEER_TESTS=1; a missing venv otherwise fails the test.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace qcoder::testing_chat {

inline bool skip_peer_tests() {
  const char* v = std::getenv("QCODER_SKIP_PEER_TESTS");
  return v && std::string(v) == "1";
}

inline std::string venv_python() { return std::string(QCODER_SOURCE_DIR) + "/.venv/bin/python"; }

// Runs `python tests/reference/SCRIPT ARGS < stdin_text`; returns stdout, fails the test on a
// non-zero exit.
inline std::string run_reference(const std::string& script_and_args, const std::string& stdin_text,
                                 bool* ok) {
  *ok = false;
  const std::string py = venv_python();
  if (!std::filesystem::exists(py)) {
    ADD_FAILURE() << "reference venv missing: " << py
                  << " (run `make venv`, or set QCODER_SKIP_PEER_TESTS=1 to skip peer tests)";
    return {};
  }
  const auto dir =
      std::filesystem::temp_directory_path() /
      ("qcoder-chat-peer-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  std::filesystem::create_directories(dir);
  const auto in = dir / "in", out = dir / "out", err = dir / "err";
  std::ofstream(in, std::ios::binary) << stdin_text;
  const std::string cmd = py + " " + std::string(QCODER_SOURCE_DIR) + "/tests/reference/" +
                          script_and_args + " <" + in.string() + " >" + out.string() + " 2>" +
                          err.string();
  const int status = std::system(cmd.c_str());
  std::stringstream o, e;
  o << std::ifstream(out, std::ios::binary).rdbuf();
  e << std::ifstream(err, std::ios::binary).rdbuf();
  std::filesystem::remove_all(dir);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << "reference script failed: " << cmd << "\n" << e.str();
    return {};
  }
  *ok = true;
  return o.str();
}

}  // namespace qcoder::testing_chat

#define QCODER_REQUIRE_PEER()                                                                 \
  do {                                                                                        \
    if (::qcoder::testing_chat::skip_peer_tests())                                            \
      GTEST_SKIP() << "QCODER_SKIP_PEER_TESTS=1: live comparison with Python jinja2 skipped"; \
  } while (0)
