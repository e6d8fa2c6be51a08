// Python's arithmetic, comparison, membership, slicing and %-formatting on template values.
#pragma once

#include <optional>
#include <string>

#include "chat/value.h"

namespace qcoder::jinja {

class Interpreter;

// op: + - * / // % ** ~. Undefined operands raise their UndefinedError.
Value binary_op(Interpreter& in, const std::string& op, const Value& a, const Value& b);
Value unary_op(Interpreter& in, char op, const Value& a);  // '-' or '+'
// op: == != < <= > >= in notin
bool compare_op(Interpreter& in, const std::string& op, const Value& a, const Value& b);
bool contains(Interpreter& in, const Value& container, const Value& item);
Value slice_value(Interpreter& in, const Value& v, const std::optional<int64_t>& start,
                  const std::optional<int64_t>& stop, const std::optional<int64_t>& step);
// fmt % args (args: a tuple, a dict or a single value).
std::string percent_format(Interpreter& in, const std::string& fmt, const Value& args);
std::string markup_escape(const std::string& s);
// Python int(x) and float(x) of a string: nullopt when Python raises ValueError.
std::optional<Value> parse_python_int(std::string_view s, int base = 10);
std::optional<double> parse_python_float(std::string_view s);
// The exact decimal digits of an integral double (Python int(float)).
std::string integral_double_digits(double d);
// Python round(x, ndigits) for floats (correctly rounded, half to even).
double python_round(double x, int64_t ndigits);

}  // namespace qcoder::jinja
