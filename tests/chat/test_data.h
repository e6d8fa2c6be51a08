// Locating the chat test data: ../shared/data beside the repository when present (the
// project's reference data), else the committed copy in tests/chat/data.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace qcoder::testing_chat {

inline std::string data_path(const std::string& name) {
  const std::filesystem::path shared =
      std::filesystem::path(QCODER_SOURCE_DIR) / ".." / "shared" / "data" / name;
  if (std::filesystem::exists(shared)) return shared.string();
  return (std::filesystem::path(QCODER_SOURCE_DIR) / "tests" / "chat" / "data" / name).string();
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<nlohmann::ordered_json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::ordered_json> rows;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::ordered_json::parse(line));
  return rows;
}

}  // namespace qcoder::testing_chat
