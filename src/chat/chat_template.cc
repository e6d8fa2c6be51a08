#include "chat/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace qcoder {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read " + p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ojson read_json(const fs::path& p) {
  try {
    return ojson::parse(read_file(p));
  } catch (const ojson::parse_error& e) {
    throw Error(p.string() + ": invalid JSON: " + e.what());
  }
}

std::shared_ptr<const jinja::Template> compile(const std::string& text, const std::string& origin) {
  try {
    return std::make_shared<const jinja::Template>(text);
  } catch (const jinja::TemplateError& e) {
    throw jinja::TemplateError(e.type(), e.message() + " (in " + origin + ")", e.line(),
                               e.column());
  }
}

void add_special_tokens(const ojson& cfg, std::vector<std::pair<std::string, jinja::Value>>& out) {
  static const char* const kNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                       "pad_token", "cls_token", "mask_token"};
  for (const char* name : kNames) {
    if (!cfg.contains(name)) continue;
    const ojson& v = cfg[name];
    std::string text;
    if (v.is_string())
      text = v.get<std::string>();
    else if (v.is_object() && v.contains("content") && v["content"].is_string())
      text = v["content"].get<std::string>();
    else
      continue;
    bool present = false;
    for (const auto& [k, x] : out) present |= k == name;
    if (!present) out.emplace_back(name, jinja::Value::string(text));
  }
}

}  // namespace

ChatTemplate ChatTemplate::from_string(const std::string& source, const ojson& special_tokens) {
  ChatTemplate t;
  t.origin_ = "<string>";
  t.templates_.push_back({"default", compile(source, t.origin_)});
  add_special_tokens(special_tokens, t.special_tokens_);
  return t;
}

ChatTemplate ChatTemplate::load(const std::string& model_dir,
                                const std::optional<std::string>& template_file) {
  ChatTemplate t;
  const fs::path dir(model_dir);
  const fs::path config_path = dir / "tokenizer_config.json";
  ojson config = ojson::object();
  if (!model_dir.empty() && fs::exists(config_path)) config = read_json(config_path);
  if (template_file) {
    t.origin_ = *template_file;
    t.templates_.push_back({"default", compile(read_file(*template_file), t.origin_)});
  } else if (!model_dir.empty() && fs::exists(dir / "chat_template.jinja")) {
    t.origin_ = (dir / "chat_template.jinja").string();
    t.templates_.push_back({"default", compile(read_file(dir / "chat_template.jinja"), t.origin_)});
  } else if (config.contains("chat_template") && config["chat_template"].is_string()) {
    t.origin_ = config_path.string() + " chat_template";
    t.templates_.push_back(
        {"default", compile(config["chat_template"].get<std::string>(), t.origin_)});
  } else if (config.contains("chat_template") && config["chat_template"].is_array()) {
    for (const ojson& entry : config["chat_template"]) {
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
          !entry["name"].is_string() || !entry["template"].is_string())
        throw Error(config_path.string() +
                    ": chat_template entries must be {\"name\", \"template\"} objects");
      const std::string name = entry["name"].get<std::string>();
      t.templates_.push_back({name, compile(entry["template"].get<std::string>(),
                                            config_path.string() + " chat_template " + name)});
    }
    if (t.templates_.empty())
      throw Error(config_path.string() + ": chat_template is an empty list");
    t.origin_ = config_path.string() + " chat_template";
  } else {
    throw Error("no chat template: " + model_dir +
                " has no chat_template.jinja and no chat_template in tokenizer_config.json"
                " (give one with --chat-template FILE)");
  }
  add_special_tokens(config, t.special_tokens_);
  if (!model_dir.empty() && fs::exists(dir / "special_tokens_map.json"))
    add_special_tokens(read_json(dir / "special_tokens_map.json"), t.special_tokens_);
  return t;
}

const std::string& ChatTemplate::source() const { return pick(false).source(); }

const jinja::Template& ChatTemplate::pick(bool has_tools) const {
  if (has_tools)
    for (const Named& n : templates_)
      if (n.name == "tool_use") return *n.tmpl;
  for (const Named& n : templates_)
    if (n.name == "default") return *n.tmpl;
  return *templates_.front().tmpl;
}

ojson normalize_messages(const ojson& messages) {
  if (!messages.is_array()) throw Error("request: \"messages\" must be a list");
  ojson out = ojson::array();
  for (const ojson& m : messages) {
    if (!m.is_object()) throw Error("request: every message must be an object, got " + m.dump());
    ojson msg = ojson::object();
    for (const auto& [k, v] : m.items()) {
      if (k == "content" && v.is_null()) {
        msg[k] = "";
      } else if (k == "tool_calls" && v.is_array()) {
        ojson calls = v;
        for (ojson& call : calls) {
          if (!call.is_object()) continue;
          ojson* fn =
              call.contains("function") && call["function"].is_object() ? &call["function"] : &call;
          if (fn->contains("arguments") && (*fn)["arguments"].is_string()) {
            ojson parsed = ojson::parse((*fn)["arguments"].get<std::string>(), nullptr, false);
            if (!parsed.is_discarded() && parsed.is_object())
              (*fn)["arguments"] = std::move(parsed);
          }
        }
        msg[k] = std::move(calls);
      } else if (!v.is_null()) {
        msg[k] = v;  // transformers drops null-valued keys
      }
    }
    const ojson* reasoning = nullptr;
    for (const char* key : {"reasoning_content", "thinking", "reasoning"})
      if (!reasoning && msg.contains(key) && !msg[key].is_null()) reasoning = &msg[key];
    if (reasoning) {
      const ojson r = *reasoning;
      ojson aliased = ojson::object();
      aliased["thinking"] = r;
      for (const auto& [k, v] : msg.items()) aliased[k] = v;
      aliased["reasoning_content"] = r;
      msg = std::move(aliased);
    }
    out.push_back(std::move(msg));
  }
  return out;
}

std::string ChatTemplate::render(const ojson& request) const {
  try {
    return render_checked(request);
  } catch (const jinja::PyError& e) {  // raised while converting the request (too deeply nested)
    throw Error("request: " + e.type + ": " + e.message);
  }
}

std::string ChatTemplate::render_checked(const ojson& request) const {
  if (!request.is_object()) throw Error("request must be a JSON object");
  if (!request.contains("messages")) throw Error("request has no \"messages\"");
  const ojson messages = normalize_messages(request["messages"]);
  if (messages.empty())
    throw Error(
        "Cannot apply chat template to an empty conversation. Provide at least one message.");
  const ojson tools = request.contains("tools") ? request["tools"] : ojson(nullptr);
  if (!tools.is_null() && !tools.is_array())
    throw Error("request: \"tools\" must be a list or null");
  bool add_generation_prompt = false;
  if (request.contains("add_generation_prompt")) {
    const ojson& g = request["add_generation_prompt"];
    if (!g.is_boolean()) throw Error("request: \"add_generation_prompt\" must be a boolean");
    add_generation_prompt = g.get<bool>();
  }
  std::vector<std::pair<std::string, jinja::Value>> vars;
  vars.emplace_back("messages", jinja::from_json(messages));
  vars.emplace_back("tools", jinja::from_json(tools));
  vars.emplace_back("documents", request.contains("documents")
                                     ? jinja::from_json(request["documents"])
                                     : jinja::Value::none());
  vars.emplace_back("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  auto set_var = [&vars](const std::string& k, jinja::Value v) {
    for (auto& [name, val] : vars)
      if (name == k) {
        val = std::move(v);
        return;
      }
    vars.emplace_back(k, std::move(v));
  };
  for (const auto& [k, v] : special_tokens_) set_var(k, v);
  for (const auto& [k, v] : request.items()) {
    if (k == "messages" || k == "tools" || k == "add_generation_prompt" ||
        k == "chat_template_kwargs" || k == "documents")
      continue;
    set_var(k, jinja::from_json(v));
  }
  if (request.contains("chat_template_kwargs")) {
    const ojson& kw = request["chat_template_kwargs"];
    if (!kw.is_object() && !kw.is_null())
      throw Error("request: \"chat_template_kwargs\" must be an object");
    if (kw.is_object())
      for (const auto& [k, v] : kw.items()) set_var(k, jinja::from_json(v));
  }
  return pick(!tools.is_null()).render(vars);
}

std::string ChatTemplate::render(const nlohmann::json& request) const {
  return render(ojson::parse(request.dump()));
}

}  // namespace qcoder
