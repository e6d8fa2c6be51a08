// libFuzzer target: arbitrary template source rendered with a small chat (errors are fine;
// crashes, hangs, leaks and runaway memory are not). Limits are tightened so that each input
// stays fast.
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/template.h"

namespace {

const nlohmann::ordered_json& vars() {
  static const nlohmann::ordered_json v = nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi é"},
                 {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1, 2.5, null, true]}}}]},
                 {"role": "tool", "content": "r"}],
    "tools": [{"type": "function", "function": {"name": "f", "description": " d ", "parameters": {"type": "object",
               "properties": {"a": {"type": ["array", "null"], "enum": [1, "x"]}}, "required": ["a"]}}}],
    "add_generation_prompt": true, "eos_token": "<|im_end|>", "n": 3, "s": "text"})");
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  qcoder::jinja::TemplateOptions opts;
  opts.render.max_loop_iterations = 20000;
  opts.render.max_output_bytes = 1 << 20;
  opts.render.max_call_depth = 40;
  opts.render.max_eval_depth = 300;
  opts.parse.max_depth = 120;
  try {
    const qcoder::jinja::Template t(std::string_view(reinterpret_cast<const char*>(data), size),
                                    opts);
    (void)t.render(vars());
  } catch (const qcoder::Error&) {
  }
  return 0;
}
