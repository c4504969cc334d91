// Structured logs: one line per event on stderr, with a stable `event` key.
//
//   ops::info("serving", "serving on http://" + addr, {{"http", addr}});
//
// Formats (--log-format, node/ops/config.h):
//   text   (default)  `dog: <msg>` — the human sentence only, exactly what the node printed
//                     before structured logs (tests, bench drivers and scripts/start.sh match it)
//   logfmt            `ts=... level=info event=serving msg="serving on ..." http=127.0.0.1:8080`
//   json              `{"ts":"...","level":"info","event":"serving","msg":"...","http":"..."}`
// `ts` is UTC, RFC 3339 with milliseconds. Contracts, in every format:
//   * one record = one line: a newline or other control character from user data (an exception
//     message, a request target) is escaped, never written raw;
//   * JSON lines are valid JSON (nlohmann-json writes them; invalid UTF-8 becomes U+FFFD);
//   * logfmt values are bare when they are non-empty printable ASCII without space, '"' or '=',
//     else a JSON string literal (which logfmt readers unquote);
//   * the key order is ts, level, event, msg, then the fields in call order;
//   * log() below the configured level (--log-level, default info) returns after one atomic
//     load; its arguments are still built, so a costly debug record is guarded by enabled().
// The event names are listed in node/ops/README.md; renaming one is a breaking change.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace dog::ops {

enum class Level : uint8_t { kDebug, kInfo, kWarn, kError };
enum class LogFormat : uint8_t { kText, kLogfmt, kJson };

std::string_view to_string(Level l);
std::string_view to_string(LogFormat f);
std::optional<Level> parse_level(std::string_view s);        // "debug", "info", "warn", "error"
std::optional<LogFormat> parse_log_format(std::string_view s);  // "text", "logfmt", "json"

// One key and value of a record. Integers and booleans stay numbers/booleans in JSON.
struct Field {
  enum class Kind : uint8_t { kString, kNumber, kBool };
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v ? v : "") {}
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), kind(Kind::kBool) {}
  template <std::integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>)
  Field(std::string_view k, T v) : key(k), value(std::to_string(v)), kind(Kind::kNumber) {}

  std::string_view key;  // a code constant: [a-z0-9_]
  std::string value;
  Kind kind = Kind::kString;
};

struct Record {
  Level level = Level::kInfo;
  std::string_view event;
  std::string_view msg;
  std::span<const Field> fields;
};

// The line for `r` in format `f`, without the trailing newline. Pure (tests call it).
std::string format_record(const Record& r, LogFormat f, std::chrono::system_clock::time_point ts);

// `s` as a JSON string literal with its quotes (nlohmann-json's escaping; invalid UTF-8 -> U+FFFD).
std::string json_quote(std::string_view s);

// Process-wide settings; set once at start-up (dog::App does it after reading the config).
void configure(Level min_level, LogFormat format);
bool enabled(Level l);

// Writes one record if its level is enabled: one write(2) of the line and '\n' to stderr, or to
// the sink a test installed. Safe from any thread.
void log(Level l, std::string_view event, std::string_view msg, std::initializer_list<Field> fields = {});

inline void debug(std::string_view event, std::string_view msg, std::initializer_list<Field> f = {}) {
  log(Level::kDebug, event, msg, f);
}
inline void info(std::string_view event, std::string_view msg, std::initializer_list<Field> f = {}) {
  log(Level::kInfo, event, msg, f);
}
inline void warn(std::string_view event, std::string_view msg, std::initializer_list<Field> f = {}) {
  log(Level::kWarn, event, msg, f);
}
inline void error(std::string_view event, std::string_view msg, std::initializer_list<Field> f = {}) {
  log(Level::kError, event, msg, f);
}

// Tests: every line goes to `sink` instead of stderr (nullptr restores stderr). Not thread-safe
// against concurrent log() calls; install it before the code under test runs.
void set_sink(std::function<void(std::string_view line)> sink);

}  // namespace dog::ops
