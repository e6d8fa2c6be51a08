// Chat prompts for qcoder: the model's Jinja chat template rendered exactly as transformers'
// apply_chat_template(tokenize=False) does, after the request normalization servers apply.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "chat/template.h"

namespace qcoder {

class ChatTemplate {
 public:
  // The template: template_file when given, else DIR/chat_template.jinja, else
  // DIR/tokenizer_config.json "chat_template" (a string, or a list of {name, template}:
  // "tool_use" when the request has tools, else "default", else the first). Special tokens
  // (bos_token, eos_token, pad_token, ...) come from tokenizer_config.json and
  // special_tokens_map.json when present. Throws qcoder::Error (a template syntax error is a
  // jinja::TemplateError with line and column).
  static ChatTemplate load(const std::string& model_dir,
                           const std::optional<std::string>& template_file = std::nullopt);
  // A template given as text, with optional special-token variables ({"eos_token": ...}).
  static ChatTemplate from_string(
      const std::string& source,
      const nlohmann::ordered_json& special_tokens = nlohmann::ordered_json::object());

  // request: {"messages": [...], "tools": [...]|null, "add_generation_prompt": bool,
  //           "chat_template_kwargs": {...}, ...extra variables}. Normalized first (see
  // normalize_messages). Every key other than messages, tools, add_generation_prompt and
  // chat_template_kwargs is a template variable, and so is each key of chat_template_kwargs.
  // Use ordered_json: with nlohmann::json object keys are sorted, which reorders tool schema
  // properties and so changes the prompt (that overload exists for convenience only).
  std::string render(const nlohmann::ordered_json& request) const;
  std::string render(const nlohmann::json& request) const;

  const std::string& source() const;  // the template text (of the default template)
  const std::string& origin() const { return origin_; }  // where it was loaded from

 private:
  struct Named {
    std::string name;
    std::shared_ptr<const jinja::Template> tmpl;
  };
  std::vector<Named> templates_;
  std::vector<std::pair<std::string, jinja::Value>> special_tokens_;
  std::string origin_;
  const jinja::Template& pick(bool has_tools) const;
  std::string render_checked(const nlohmann::ordered_json& request) const;
};

// What servers do to OpenAI messages before rendering, then what transformers 5 does:
// tool_calls[].function.arguments given as a JSON string is parsed (kept as a string when it is
// not a JSON object); content null -> ""; remaining null-valued message keys are dropped; a
// message's reasoning (reasoning_content, thinking or reasoning) is also given as
// "thinking" and "reasoning_content". Throws qcoder::Error if messages is not a list of objects.
nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages);

}  // namespace qcoder
