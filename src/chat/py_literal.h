// Python's json.loads and ast.literal_eval on model output, as the Qwen3-Coder tool parser
// calls them: values keep Python's types (exact big integers, tuples, key order with the last
// duplicate winning) so that json.dumps of the result is what Python prints.
#pragma once

#include <optional>
#include <string_view>

#include "chat/value.h"

namespace qcoder::jinja {

// json.loads(text) (strict, NaN/Infinity accepted); nullopt where Python raises.
std::optional<Value> python_json_loads(std::string_view text);

// ast.literal_eval(text); nullopt where Python raises. A result that json.dumps cannot
// serialize (a set, bytes, complex, Ellipsis) sets *unserializable and returns a value.
std::optional<Value> python_literal_eval(std::string_view text, bool* unserializable);

}  // namespace qcoder::jinja
