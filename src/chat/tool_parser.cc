#include "chat/tool_parser.h"

#include <cmath>
#include <random>

#include "chat/operators.h"
#include "chat/py_literal.h"
#include "chat/unicode.h"

namespace qcoder {
namespace toolcall {

using jinja::Value;

ToolSchemas::ToolSchemas(const nlohmann::json& tools)
    : tools_(tools.is_array() ? tools : nlohmann::json::array()) {}

const nlohmann::json* ToolSchemas::properties(const std::string& function) const {
  for (const nlohmann::json& tool : tools_) {
    if (!tool.is_object() || !tool.contains("type") || tool["type"] != "function") continue;
    if (!tool.contains("function") || !tool["function"].is_object()) continue;
    const nlohmann::json& fn = tool["function"];
    if (!fn.contains("name") || fn["name"] != function) continue;
    if (!fn.contains("parameters") || !fn["parameters"].is_object()) return nullptr;
    const nlohmann::json& params = fn["parameters"];
    if (params.contains("properties"))
      return params["properties"].is_object() ? &params["properties"] : nullptr;
    return &params;  // Python: a parameters dict without "properties" is used as the config itself
  }
  return nullptr;
}

std::string ToolSchemas::param_type(const nlohmann::json& props, const std::string& param) const {
  const nlohmann::json& p = props[param];
  if (!p.is_object() || !p.contains("type")) return "string";
  // str(type).strip().lower(): a type list becomes its Python repr, e.g. "['integer', 'null']".
  const nlohmann::ordered_json t = nlohmann::ordered_json::parse(p["type"].dump());
  return jinja::unicode::lower(
      jinja::unicode::strip(jinja::py_str(jinja::from_json(t)), true, true));
}

namespace {
bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool is_string_type(const std::string& t) {
  return t == "string" || t == "str" || t == "text" || t == "varchar" || t == "char" || t == "enum";
}
}  // namespace

bool ToolSchemas::is_raw_string(const std::string& function, const std::string& param) const {
  const nlohmann::json* props = properties(function);
  if (!props || !props->contains(param)) return true;
  return is_string_type(param_type(*props, param));
}

Value ToolSchemas::convert(const std::string& function, const std::string& param,
                           const std::string& raw, bool* unserializable) const {
  *unserializable = false;
  if (jinja::unicode::lower(raw) == "null") return Value::none();
  const nlohmann::json* props = properties(function);
  if (!props || !props->contains(param)) return Value::string(raw);
  const std::string type = param_type(*props, param);
  if (is_string_type(type)) return Value::string(raw);
  if (starts_with(type, "int") || starts_with(type, "uint") || starts_with(type, "long") ||
      starts_with(type, "short") || starts_with(type, "unsigned")) {
    if (auto v = jinja::parse_python_int(raw)) return *v;
    return Value::string(raw);
  }
  if (starts_with(type, "num") || starts_with(type, "float")) {
    const auto f = jinja::parse_python_float(raw);
    if (!f || !std::isfinite(*f)) return Value::string(raw);  // int(inf) and int(nan) raise
    if (*f != std::trunc(*f)) return Value::number(*f);
    if (auto v = jinja::parse_python_int(jinja::integral_double_digits(*f))) return *v;
    return Value::string(raw);
  }
  if (type == "boolean" || type == "bool" || type == "binary")
    return Value::boolean(jinja::unicode::lower(raw) == "true");
  if (type == "object" || type == "array" || type == "arr" || starts_with(type, "dict") ||
      starts_with(type, "list")) {
    if (auto v = jinja::python_json_loads(raw)) return *v;
  }
  bool bad = false;
  if (auto v = jinja::python_literal_eval(raw, &bad)) {
    *unserializable = bad;
    return *v;
  }
  return Value::string(raw);
}

std::string strip_one_newline(std::string v) {
  if (!v.empty() && v.front() == '\n') v.erase(0, 1);
  if (!v.empty() && v.back() == '\n') v.pop_back();
  return v;
}

}  // namespace toolcall

namespace {

using jinja::Value;

struct ParseFailure {};

// End of a lazy "(.*?)$" match starting at `from`: Python's $ also matches before a final "\n".
size_t lazy_dollar(std::string_view s, size_t from) {
  if (!s.empty() && s.back() == '\n' && s.size() - 1 >= from) return s.size() - 1;
  return s.size();
}

std::vector<std::string_view> blocks_of(std::string_view out) {
  std::vector<std::string_view> blocks;
  size_t pos = 0;
  while (true) {
    const size_t i = out.find("<tool_call>", pos);
    if (i == std::string_view::npos) break;
    const size_t body = i + 11;
    const size_t j = out.find("</tool_call>", body);
    if (j != std::string_view::npos) {
      blocks.push_back(out.substr(body, j - body));
      pos = j + 12;
    } else {
      const size_t e = lazy_dollar(out, body);
      blocks.push_back(out.substr(body, e - body));
      break;
    }
  }
  if (blocks.empty()) blocks.push_back(out);
  return blocks;
}

std::vector<std::string_view> functions_of(std::string_view block) {
  std::vector<std::string_view> fns;
  size_t pos = 0;
  while (true) {
    const size_t i = block.find("<function=", pos);
    if (i == std::string_view::npos) break;
    const size_t body = i + 10;
    const size_t j = block.find("</function>", body);
    if (j != std::string_view::npos) {
      fns.push_back(block.substr(body, j - body));
      pos = j + 11;
    } else {
      fns.push_back(block.substr(body));
      break;
    }
  }
  return fns;
}

nlohmann::json parse_function(std::string_view fn, const toolcall::ToolSchemas& schemas) {
  const size_t gt = fn.find('>');
  if (gt == std::string_view::npos) throw ParseFailure{};
  const std::string name(fn.substr(0, gt));
  const std::string_view params = fn.substr(gt + 1);
  Value args = Value::dict();
  size_t pos = 0;
  while (true) {
    const size_t i = params.find("<parameter=", pos);
    if (i == std::string_view::npos) break;
    const size_t start = i + 11;
    size_t e = start, next = start;
    const size_t dollar = lazy_dollar(params, start);
    for (;; ++e) {
      if (params.substr(e, 12) == "</parameter>") {
        next = e + 12;
        break;
      }
      if (params.substr(e, 11) == "<parameter=" || params.substr(e, 11) == "</function>" ||
          e >= dollar) {
        next = e;
        break;
      }
    }
    const std::string_view text = params.substr(start, e - start);
    const size_t name_end = text.find('>');
    if (name_end == std::string_view::npos) throw ParseFailure{};
    const std::string pname(text.substr(0, name_end));
    const std::string value = toolcall::strip_one_newline(std::string(text.substr(name_end + 1)));
    bool unserializable = false;
    Value v = schemas.convert(name, pname, value, &unserializable);
    if (unserializable) throw ParseFailure{};
    args.mutable_dict().set(Value::string(pname), std::move(v));
    pos = next;
  }
  std::string arguments;
  try {
    arguments = jinja::json_dumps(args);
  } catch (const jinja::PyError&) {
    throw ParseFailure{};
  }
  return {{"id", make_tool_call_id()},
          {"type", "function"},
          {"function", {{"name", name}, {"arguments", arguments}}}};
}

}  // namespace

std::string make_tool_call_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* const kHex = "0123456789abcdef";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kHex[rng() & 15];
  return id;
}

ParsedToolOutput parse_tool_calls(std::string_view out, const nlohmann::json& tools) {
  ParsedToolOutput whole{std::string(out), {}};
  if (out.find("<function=") == std::string_view::npos) return whole;
  const toolcall::ToolSchemas schemas(tools);
  ParsedToolOutput r;
  try {
    for (std::string_view block : blocks_of(out))
      for (std::string_view fn : functions_of(block))
        r.tool_calls.push_back(parse_function(fn, schemas));
  } catch (const ParseFailure&) {
    return whole;
  }
  if (r.tool_calls.empty()) return whole;
  size_t content_end = out.find("<tool_call>");
  if (content_end == std::string_view::npos) content_end = out.find("<function=");
  if (content_end > 0) r.content = std::string(out.substr(0, content_end));
  return r;
}

}  // namespace qcoder
