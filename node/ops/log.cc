#include "node/ops/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace dog::ops {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::atomic<LogFormat> g_format{LogFormat::kText};
std::function<void(std::string_view)> g_sink;  // tests only

std::string timestamp(std::chrono::system_clock::time_point tp) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(tp.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  if (ms < 0 && ms % 1000 != 0) --secs;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(((ms % 1000) + 1000) % 1000));
  return buf;
}

// The human sentence with control characters escaped, so it stays one line.
void append_text(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
}

bool bare_logfmt(std::string_view v) {
  if (v.empty()) return false;
  for (unsigned char c : v)
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '=' || c == '\\') return false;
  return true;
}

void append_logfmt(std::string& out, std::string_view key, std::string_view v) {
  if (!out.empty()) out += ' ';
  out += key;
  out += '=';
  out += bare_logfmt(v) ? std::string(v) : json_quote(v);
}

void write_all(std::string_view line) {
  while (!line.empty()) {
    ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to log to: drop, never block or throw
    line.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

std::string_view to_string(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

std::string_view to_string(LogFormat f) {
  switch (f) {
    case LogFormat::kText: return "text";
    case LogFormat::kLogfmt: return "logfmt";
    case LogFormat::kJson: return "json";
  }
  return "text";
}

std::optional<Level> parse_level(std::string_view s) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError})
    if (s == to_string(l)) return l;
  return std::nullopt;
}

std::optional<LogFormat> parse_log_format(std::string_view s) {
  for (LogFormat f : {LogFormat::kText, LogFormat::kLogfmt, LogFormat::kJson})
    if (s == to_string(f)) return f;
  return std::nullopt;
}

std::string json_quote(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string format_record(const Record& r, LogFormat f, std::chrono::system_clock::time_point ts) {
  std::string out;
  switch (f) {
    case LogFormat::kText:
      out = "dog: ";
      append_text(out, r.msg);
      return out;
    case LogFormat::kLogfmt:
      append_logfmt(out, "ts", timestamp(ts));
      append_logfmt(out, "level", to_string(r.level));
      append_logfmt(out, "event", r.event);
      append_logfmt(out, "msg", r.msg);
      for (const Field& x : r.fields) append_logfmt(out, x.key, x.value);
      return out;
    case LogFormat::kJson: {
      out = "{\"ts\":" + json_quote(timestamp(ts)) + ",\"level\":" + json_quote(to_string(r.level)) +
            ",\"event\":" + json_quote(r.event) + ",\"msg\":" + json_quote(r.msg);
      for (const Field& x : r.fields) {
        out += ',';
        out += json_quote(x.key);
        out += ':';
        out += x.kind == Field::Kind::kString ? json_quote(x.value) : x.value;
      }
      out += '}';
      return out;
    }
  }
  return out;
}

void configure(Level min_level, LogFormat format) {
  g_level.store(min_level, std::memory_order_relaxed);
  g_format.store(format, std::memory_order_relaxed);
}

bool enabled(Level l) { return l >= g_level.load(std::memory_order_relaxed); }

void log(Level l, std::string_view event, std::string_view msg, std::initializer_list<Field> fields) {
  if (!enabled(l)) return;
  Record r{l, event, msg, std::span<const Field>(fields.begin(), fields.size())};
  std::string line = format_record(r, g_format.load(std::memory_order_relaxed), std::chrono::system_clock::now());
  if (g_sink) {
    g_sink(line);
    return;
  }
  line += '\n';
  write_all(line);
}

void set_sink(std::function<void(std::string_view)> sink) { g_sink = std::move(sink); }

}  // namespace dog::ops
