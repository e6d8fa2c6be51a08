#include "server/openai_params.h"

#include <filesystem>
#include <fstream>

#include "server/api_error.h"

namespace qcoder::server {

using json = nlohmann::ordered_json;

namespace {

bool present(const json& b, const char* key) { return b.contains(key) && !b.at(key).is_null(); }

std::optional<double> number(const json& b, const char* key, double lo, double hi) {
  if (!present(b, key)) return std::nullopt;
  const json& v = b.at(key);
  if (!v.is_number()) throw bad_param(key, std::string("'") + key + "' must be a number");
  const double d = v.get<double>();
  if (!(d >= lo && d <= hi))
    throw bad_param(key, std::string("'") + key + "' must be between " + json(lo).dump() + " and " +
                             json(hi).dump() + ", got " + v.dump());
  return d;
}

std::optional<int64_t> integer(const json& b, const char* key, int64_t lo, int64_t hi) {
  if (!present(b, key)) return std::nullopt;
  const json& v = b.at(key);
  if (!v.is_number_integer()) throw bad_param(key, std::string("'") + key + "' must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    throw bad_param(key, std::string("'") + key + "' is too large");
  const int64_t i = v.get<int64_t>();
  if (i < lo || i > hi)
    throw bad_param(key, std::string("'") + key + "' must be between " + std::to_string(lo) +
                             " and " + std::to_string(hi) + ", got " + std::to_string(i));
  return i;
}

std::optional<bool> boolean(const json& b, const char* key) {
  if (!present(b, key)) return std::nullopt;
  if (!b.at(key).is_boolean()) throw bad_param(key, std::string("'") + key + "' must be a boolean");
  return b.at(key).get<bool>();
}

// Fields shared by both endpoints: sampling, limits, stop, n, stream, logit_bias, seed.
void parse_common(const json& b, const RequestDefaults& d, ApiRequest& r) {
  if (!b.is_object()) throw ApiError(400, "the request body must be a JSON object");
  if (present(b, "model")) {
    if (!b.at("model").is_string()) throw bad_param("model", "'model' must be a string");
    r.model = b.at("model").get<std::string>();
  }
  SamplingParams& s = r.gen.sampling;
  s = d.sampling;
  if (auto v = number(b, "temperature", 0, 2)) s.temperature = static_cast<float>(*v);
  if (auto v = number(b, "top_p", 0, 1)) s.top_p = static_cast<float>(*v);
  if (auto v = integer(b, "top_k", -1, 1 << 30)) s.top_k = *v < 0 ? 0 : static_cast<int>(*v);
  if (auto v = number(b, "min_p", 0, 1)) s.min_p = static_cast<float>(*v);
  if (auto v = number(b, "presence_penalty", -2, 2)) s.presence_penalty = static_cast<float>(*v);
  if (auto v = number(b, "frequency_penalty", -2, 2)) s.frequency_penalty = static_cast<float>(*v);
  if (auto v = number(b, "repetition_penalty", 0, 10)) {
    if (*v == 0) throw bad_param("repetition_penalty", "'repetition_penalty' must be > 0");
    s.repetition_penalty = static_cast<float>(*v);
  }
  if (auto v = integer(b, "repetition_context_size", 0, 1 << 20))
    s.repetition_context_size = static_cast<int>(*v);
  if (auto v = integer(b, "seed", INT64_MIN, INT64_MAX)) s.seed = static_cast<uint64_t>(*v);
  if (present(b, "logit_bias")) {
    const json& lb = b.at("logit_bias");
    if (!lb.is_object())
      throw bad_param("logit_bias", "'logit_bias' must be an object of token id -> bias");
    s.logit_bias.clear();
    for (const auto& [k, v] : lb.items()) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(k, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != k.size() || id < 0 || id >= d.vocab_size)
        throw bad_param("logit_bias",
                        "logit_bias key \"" + k + "\" is not a token id of this model");
      if (!v.is_number() || v.get<double>() < -100 || v.get<double>() > 100)
        throw bad_param("logit_bias", "logit_bias values must be numbers between -100 and 100");
      s.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(v.get<double>()));
    }
  }
  std::optional<int64_t> max_tokens = integer(b, "max_tokens", 1, INT32_MAX);
  if (auto v = integer(b, "max_completion_tokens", 1, INT32_MAX)) max_tokens = v;
  r.gen.max_tokens = max_tokens.value_or(-1);
  if (auto v = integer(b, "n", 1, d.max_n)) r.n = static_cast<int>(*v);
  if (present(b, "stop")) {
    const json& st = b.at("stop");
    if (st.is_string()) {
      r.stop.push_back(st.get<std::string>());
    } else if (st.is_array()) {
      if (st.size() > 4) throw bad_param("stop", "'stop' takes at most 4 strings");
      for (const json& x : st) {
        if (!x.is_string())
          throw bad_param("stop", "'stop' must be a string or an array of strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      throw bad_param("stop", "'stop' must be a string or an array of strings");
    }
    std::erase_if(r.stop, [](const std::string& x) { return x.empty(); });
  }
  r.stream = boolean(b, "stream").value_or(false);
  if (present(b, "stream_options")) {
    const json& so = b.at("stream_options");
    if (!so.is_object()) throw bad_param("stream_options", "'stream_options' must be an object");
    if (!r.stream)
      throw bad_param("stream_options", "'stream_options' is only allowed when 'stream' is true");
    r.include_usage = boolean(so, "include_usage").value_or(false);
  }
  if (present(b, "response_format")) {
    const json& rf = b.at("response_format");
    if (!rf.is_object() || !rf.contains("type") || !rf.at("type").is_string())
      throw bad_param("response_format", "'response_format' must be an object with a 'type'");
    if (rf.at("type") != "text")
      throw bad_param("response_format",
                      "response_format type \"" + rf.at("type").get<std::string>() +
                          "\" is not supported yet (structured output); use \"text\"");
  }
  if (boolean(b, "ignore_eos").value_or(false))
    r.gen.stop_tokens.clear();
  else
    r.gen.stop_tokens = d.stop_tokens;
  r.gen.cache_prompt = boolean(b, "cache_prompt").value_or(true);
}

void check_message(const json& m, size_t i) {
  const std::string where = "messages[" + std::to_string(i) + "]";
  if (!m.is_object()) throw bad_param(where, where + " must be an object");
  if (!m.contains("role") || !m.at("role").is_string())
    throw bad_param(where + ".role", where + " needs a string 'role'");
  const std::string role = m.at("role").get<std::string>();
  static const char* kRoles[] = {"system", "developer", "user", "assistant", "tool"};
  if (std::find(std::begin(kRoles), std::end(kRoles), role) == std::end(kRoles))
    throw bad_param(where + ".role", "unknown role \"" + role + "\"");
  if (m.contains("content")) {
    const json& c = m.at("content");
    if (c.is_array()) {
      for (const json& part : c)
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part.at("text").is_string())
          throw bad_param(
              where + ".content",
              "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
    } else if (!c.is_string() && !c.is_null()) {
      throw bad_param(where + ".content",
                      where + ".content must be a string, an array of text parts or null");
    }
  } else if (role != "assistant") {
    throw bad_param(where + ".content", where + " needs 'content'");
  }
  if (m.contains("tool_calls") && !m.at("tool_calls").is_null()) {
    if (role != "assistant" || !m.at("tool_calls").is_array())
      throw bad_param(where + ".tool_calls",
                      "'tool_calls' must be an array on an assistant message");
    for (const json& tc : m.at("tool_calls"))
      if (!tc.is_object() || !tc.contains("function") || !tc.at("function").is_object() ||
          !tc.at("function").contains("name") || !tc.at("function").at("name").is_string())
        throw bad_param(where + ".tool_calls", "each tool call needs function.name");
  }
}

}  // namespace

ApiRequest parse_chat_request(const json& b, const RequestDefaults& d) {
  ApiRequest r;
  r.chat = true;
  parse_common(b, d, r);
  if (!b.contains("messages") || !b.at("messages").is_array() || b.at("messages").empty())
    throw bad_param("messages", "'messages' must be a non-empty array");
  for (size_t i = 0; i < b.at("messages").size(); ++i) check_message(b.at("messages")[i], i);
  r.messages = b.at("messages");
  r.logprobs = boolean(b, "logprobs").value_or(false);
  if (auto v = integer(b, "top_logprobs", 0, 20)) {
    if (!r.logprobs) throw bad_param("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r.top_logprobs = static_cast<int>(*v);
  }
  if (present(b, "tools")) {
    const json& t = b.at("tools");
    if (!t.is_array()) throw bad_param("tools", "'tools' must be an array");
    for (const json& tool : t)
      if (!tool.is_object() || tool.value("type", "function") != "function" ||
          !tool.contains("function") || !tool.at("function").is_object() ||
          !tool.at("function").contains("name") || !tool.at("function").at("name").is_string())
        throw bad_param(
            "tools", "each tool must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
    if (!t.empty()) r.tools = t;
  }
  r.tool_choice = r.tools.is_null() ? ToolChoice::kNone : ToolChoice::kAuto;
  if (present(b, "tool_choice")) {
    const json& tc = b.at("tool_choice");
    if (tc.is_string()) {
      const std::string s = tc.get<std::string>();
      if (s == "none")
        r.tool_choice = ToolChoice::kNone;
      else if (s == "auto")
        r.tool_choice = r.tools.is_null() ? ToolChoice::kNone : ToolChoice::kAuto;
      else if (s == "required")
        r.tool_choice = ToolChoice::kRequired;
      else
        throw bad_param(
            "tool_choice",
            "'tool_choice' must be \"none\", \"auto\", \"required\" or a named function");
    } else if (tc.is_object() && tc.contains("function") && tc.at("function").is_object() &&
               tc.at("function").contains("name") && tc.at("function").at("name").is_string()) {
      r.tool_choice = ToolChoice::kNamed;
      r.tool_name = tc.at("function").at("name").get<std::string>();
    } else {
      throw bad_param("tool_choice",
                      "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": "
                      "\"function\", \"function\": {\"name\": ...}}");
    }
    if ((r.tool_choice == ToolChoice::kRequired || r.tool_choice == ToolChoice::kNamed) &&
        r.tools.is_null())
      throw bad_param("tool_choice", "'tool_choice' " + tc.dump() + " needs 'tools'");
    if (r.tool_choice == ToolChoice::kNamed) {
      bool found = false;
      for (const json& tool : r.tools) found |= tool.at("function").at("name") == r.tool_name;
      if (!found)
        throw bad_param("tool_choice",
                        "tool_choice names \"" + r.tool_name + "\", which is not in 'tools'");
    }
  }
  r.parallel_tool_calls = boolean(b, "parallel_tool_calls").value_or(true);
  if (present(b, "chat_template_kwargs")) {
    if (!b.at("chat_template_kwargs").is_object())
      throw bad_param("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    r.template_kwargs = b.at("chat_template_kwargs");
  }
  r.gen.top_logprobs = r.logprobs ? r.top_logprobs : -1;
  return r;
}

ApiRequest parse_completion_request(const json& b, const RequestDefaults& d) {
  ApiRequest r;
  parse_common(b, d, r);
  if (!b.contains("prompt") || b.at("prompt").is_null())
    throw bad_param("prompt", "'prompt' is required");
  const json& p = b.at("prompt");
  auto ids_of = [&](const json& a) {
    std::vector<int32_t> ids;
    for (const json& x : a) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= d.vocab_size)
        throw bad_param("prompt", "prompt token ids must be integers in [0, " +
                                      std::to_string(d.vocab_size) + ")");
      ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
    }
    return ids;
  };
  if (p.is_string()) {
    r.prompt_texts.push_back(p.get<std::string>());
  } else if (p.is_array() && !p.empty() && p[0].is_string()) {
    for (const json& x : p) {
      if (!x.is_string())
        throw bad_param("prompt", "'prompt' must be a string, an array of strings or token ids");
      r.prompt_texts.push_back(x.get<std::string>());
    }
  } else if (p.is_array() && !p.empty() && p[0].is_array()) {
    for (const json& x : p) {
      if (!x.is_array())
        throw bad_param("prompt", "'prompt' must be a string, an array of strings or token ids");
      r.prompt_ids.push_back(ids_of(x));
    }
  } else if (p.is_array() && !p.empty()) {
    r.prompt_ids.push_back(ids_of(p));
  } else {
    throw bad_param("prompt", "'prompt' must be a non-empty string, array of strings or token ids");
  }
  if (r.prompt_texts.size() + r.prompt_ids.size() > 16)
    throw bad_param("prompt", "at most 16 prompts per request");
  if (present(b, "suffix")) {
    if (!b.at("suffix").is_string()) throw bad_param("suffix", "'suffix' must be a string");
    r.suffix = b.at("suffix").get<std::string>();
  }
  if (present(b, "logprobs")) {
    const json& lp = b.at("logprobs");
    if (lp.is_boolean()) {
      r.logprobs = lp.get<bool>();
    } else if (auto v = integer(b, "logprobs", 0, 20)) {
      r.logprobs = true;
      r.top_logprobs = static_cast<int>(*v);
    }
  }
  r.echo = boolean(b, "echo").value_or(false);
  if (r.echo && r.suffix) throw bad_param("echo", "'echo' cannot be combined with 'suffix'");
  r.gen.top_logprobs = r.logprobs ? r.top_logprobs : -1;
  return r;
}

SamplingParams load_sampling_defaults(const std::string& model_dir) {
  SamplingParams s;
  const auto path = std::filesystem::path(model_dir) / "generation_config.json";
  std::ifstream in(path);
  if (!in) return s;
  json g = json::parse(in, nullptr, false);
  if (!g.is_object()) return s;
  auto num = [&](const char* k) -> std::optional<double> {
    if (g.contains(k) && g.at(k).is_number()) return g.at(k).get<double>();
    return std::nullopt;
  };
  if (auto v = num("temperature")) s.temperature = static_cast<float>(*v);
  if (auto v = num("top_p")) s.top_p = static_cast<float>(*v);
  if (auto v = num("top_k")) s.top_k = static_cast<int>(*v);
  if (auto v = num("min_p")) s.min_p = static_cast<float>(*v);
  if (auto v = num("repetition_penalty")) s.repetition_penalty = static_cast<float>(*v);
  if (auto v = num("presence_penalty")) s.presence_penalty = static_cast<float>(*v);
  if (auto v = num("frequency_penalty")) s.frequency_penalty = static_cast<float>(*v);
  if (g.contains("do_sample") && g.at("do_sample") == false) s.temperature = 0.0f;
  return s;
}

}  // namespace qcoder::server
