#include "node/http/wire.h"

#include <cstdio>

namespace dog::node {

HeadScanner::Result HeadScanner::scan(std::string_view bytes, size_t* used) {
  *used = 0;
  if (done_) return Result::kHeadEnd;
  for (size_t i = 0; i < bytes.size(); ++i) {
    char c = bytes[i];
    if (c == '\n') {
      if (!prev_cr_) return done_ = true, Result::kBareLf;
      if (line_empty_ && seen_request_line_) {
        done_ = true;
        *used = i + 1;
        return Result::kHeadEnd;
      }
      if (!line_empty_) seen_request_line_ = true;
      line_start_ = true;
      line_empty_ = true;
      prev_cr_ = false;
      continue;
    }
    if (line_start_ && seen_request_line_ && (c == ' ' || c == '\t')) return done_ = true, Result::kObsFold;
    line_start_ = false;
    prev_cr_ = c == '\r';
    if (c != '\r') line_empty_ = false;
  }
  *used = bytes.size();
  return Result::kMore;
}

bool valid_field_name(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok) {
      switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
        case '-': case '.': case '^': case '_': case '`': case '|': case '~':
          ok = true;
          break;
        default:
          break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

bool valid_field_value(std::string_view value) {
  for (char c : value)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

std::string_view http_date(std::time_t now) {
  // One cache per thread: every loop owns its thread.
  thread_local std::time_t cached_at = -1;
  thread_local char buf[32];
  thread_local size_t len = 0;
  if (now != cached_at) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int n = std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                          tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                          tm.tm_sec);
    len = n > 0 ? static_cast<size_t>(n) : 0;
    cached_at = now;
  }
  return {buf, len};
}

}  // namespace dog::node
