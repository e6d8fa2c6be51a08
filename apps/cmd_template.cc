// qcoder template: render a chat request through the model's chat template.
// qcoder parse-tools: model output (stdin) -> OpenAI tool calls, whole or as streamed deltas.
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "chat/chat_template.h"
#include "chat/streaming_tool_parser.h"
#include "chat/tool_parser.h"
#include "commands.h"
#include "core/error.h"
#include "flags.h"

namespace qcoder::cli {
namespace {

std::string read_input(const std::string& path, const char* flag) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(std::string(flag) + ": cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename Json>
Json parse_json(const std::string& text, const std::string& what) {
  try {
    return Json::parse(text);
  } catch (const std::exception& e) {
    throw Error(what + ": invalid JSON: " + e.what());
  }
}

// Model output may hold invalid UTF-8; print it replaced rather than fail.
template <typename Json>
std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

int run_template(int argc, char** argv) {
  std::string model_dir, request_file, template_file;
  FlagSet flags(
      "template",
      "Prints the prompt the chat template renders for a request, exactly (no newline added).\n"
      "The request is a JSON object: \"messages\", optional \"tools\" (list or null),\n"
      "optional \"add_generation_prompt\" (default false) and any extra template variables\n"
      "(also inside \"chat_template_kwargs\"). Messages are normalized first as the server\n"
      "does: JSON-string tool-call arguments are parsed, null content becomes \"\".");
  flags.add("-m,--model", &model_dir,
            "model folder (chat_template.jinja or tokenizer_config.json)");
  flags.add("--request", &request_file, "request JSON file, or - for stdin", true);
  flags.add("--chat-template", &template_file, "template file to use instead of the model's");
  if (!flags.parse(argc, argv)) return 0;
  if (model_dir.empty() && template_file.empty())
    throw Error("give -m DIR or --chat-template FILE");
  const auto request =
      parse_json<nlohmann::ordered_json>(read_input(request_file, "--request"), request_file);
  const ChatTemplate tmpl = ChatTemplate::load(
      model_dir, template_file.empty() ? std::nullopt : std::optional<std::string>(template_file));
  const std::string prompt = tmpl.render(request);
  std::cout << prompt << std::flush;
  return 0;
}

int run_parse_tools(int argc, char** argv) {
  std::string model_dir, tools_file;
  bool stream = false;
  int64_t chunk = 8;
  FlagSet flags(
      "parse-tools",
      "Parses Qwen3-Coder tool calls in model output read from stdin. Prints one JSON object\n"
      "{\"content\": string|null, \"tool_calls\": [{\"type\": \"function\", \"function\":\n"
      "{\"name\", \"arguments\": JSON string}}]}; with --stream, one OpenAI delta object per\n"
      "line (JSON Lines), feeding the input in --chunk-bytes pieces.");
  flags.add("-m,--model", &model_dir,
            "model folder (optional; the Qwen3-Coder XML format is assumed)");
  flags.add("--tools", &tools_file, "the request's tools: a JSON array (OpenAI format) or null",
            true);
  flags.add("--stream", &stream, "print streaming deltas (JSON Lines)");
  flags.add("--chunk-bytes", &chunk, "bytes per piece fed to the streaming parser");
  if (!flags.parse(argc, argv)) return 0;
  if (chunk <= 0) throw Error("--chunk-bytes must be > 0");
  if (flags.given("--chunk-bytes") && !stream) throw Error("--chunk-bytes needs --stream");
  const auto tools = parse_json<nlohmann::json>(read_input(tools_file, "--tools"), tools_file);
  if (!tools.is_array() && !tools.is_null())
    throw Error("--tools: expected a JSON array of tools (or null)");
  const std::string text(std::istreambuf_iterator<char>(std::cin), {});

  if (stream) {
    StreamingToolCallParser parser(tools);
    auto print = [](const std::vector<nlohmann::json>& deltas) {
      for (const nlohmann::json& d : deltas) std::cout << dump(d) << "\n";
    };
    for (size_t i = 0; i < text.size(); i += static_cast<size_t>(chunk))
      print(parser.push(std::string_view(text).substr(i, static_cast<size_t>(chunk))));
    print(parser.finish());
    std::cout << std::flush;
    return 0;
  }
  const ParsedToolOutput parsed = parse_tool_calls(text, tools);
  nlohmann::ordered_json out;
  out["content"] =
      parsed.content ? nlohmann::ordered_json(*parsed.content) : nlohmann::ordered_json(nullptr);
  out["tool_calls"] = nlohmann::ordered_json::array();
  for (const nlohmann::json& call : parsed.tool_calls) {
    nlohmann::ordered_json c;
    c["type"] = "function";
    c["function"]["name"] = call["function"]["name"];
    c["function"]["arguments"] = call["function"]["arguments"];
    out["tool_calls"].push_back(c);
  }
  std::cout << dump(out) << std::endl;
  return 0;
}

}  // namespace qcoder::cli
