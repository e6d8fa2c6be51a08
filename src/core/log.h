// Diagnostics go to stderr; stdout is reserved for command results.
#pragma once

#include <sstream>
#include <string>

namespace qcoder {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Messages below this level are dropped. Default kInfo; QCODER_LOG=debug|info|warn|error
// in the environment overrides it at start-up.
void set_log_level(LogLevel level);
LogLevel log_level();
void log_message(LogLevel level, const std::string& message);

}  // namespace qcoder

#define QCODER_LOG(level, expr)                                       \
  do {                                                                \
    if (static_cast<int>(level) >= static_cast<int>(::qcoder::log_level())) { \
      std::ostringstream qcoder_log_os_;                              \
      qcoder_log_os_ << expr;                                         \
      ::qcoder::log_message(level, qcoder_log_os_.str());             \
    }                                                                 \
  } while (0)
#define QCODER_DEBUG(expr) QCODER_LOG(::qcoder::LogLevel::kDebug, expr)
#define QCODER_INFO(expr) QCODER_LOG(::qcoder::LogLevel::kInfo, expr)
#define QCODER_WARN(expr) QCODER_LOG(::qcoder::LogLevel::kWarn, expr)
