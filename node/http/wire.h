// Internal, sans-IO: small RFC 9112 rules the connection applies around llhttp.
//
// * HeadScanner sees the raw bytes of each request head (request line and header lines, up to
//   the empty line) before llhttp does, and rejects what llhttp's build accepts but RFC 9112
//   forbids: a bare LF as a line end (§2.2) and obs-fold continuation lines (§5.2).
// * valid_field_name/valid_field_value guard what handlers put in responses (no CR, LF or NUL:
//   response splitting).
// * http_date() is the IMF-fixdate for the Date header (RFC 9110 §5.6.7), cached per second.
#pragma once

#include <cstddef>
#include <ctime>
#include <string_view>

namespace dog::node {

class HeadScanner {
 public:
  enum class Result { kMore, kHeadEnd, kBareLf, kObsFold };

  // Starts a new request head (call at the first byte of every request).
  void reset() { *this = HeadScanner(); }
  // Scans `bytes`, the next bytes of the stream. Stops at the end of the head (the LF of the
  // empty line): `*used` is then the number of bytes that belong to the head. After kHeadEnd
  // (or an error) the scanner ignores input until reset(). Empty lines before the request line
  // are allowed (RFC 9112 §2.2).
  Result scan(std::string_view bytes, size_t* used);
  bool done() const { return done_; }

 private:
  bool done_ = false;
  bool prev_cr_ = false;
  bool line_start_ = true;
  bool line_empty_ = true;  // nothing but a CR seen on this line so far
  bool seen_request_line_ = false;
};

// RFC 9110 token characters, non-empty.
bool valid_field_name(std::string_view name);
// No CR, LF or NUL.
bool valid_field_value(std::string_view value);

// "Sun, 06 Nov 1994 08:49:37 GMT" for `now`; recomputed only when the second changes.
std::string_view http_date(std::time_t now);

}  // namespace dog::node

namespace dog::node {

// Buffers keep at most this much capacity between messages; a larger one is released once its
// message is done, so one large message does not pin memory for the life of a connection.
inline constexpr size_t kRetainBufferBytes = 64 << 10;

template <class Buffer>
void release_if_large(Buffer& b) {
  if (b.capacity() > kRetainBufferBytes) Buffer().swap(b);
  else b.clear();
}

}  // namespace dog::node
