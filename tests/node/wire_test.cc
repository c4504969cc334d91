// Sans-IO pieces of the front door: the head scanner, field checks, Date, the send queue.
#include <catch2/catch.hpp>

#include "node/http/send_queue.h"
#include "node/http/wire.h"

using dog::node::HeadScanner;
using dog::node::SendQueue;
using R = HeadScanner::Result;

namespace {

// Feeds `parts` in order; returns the first result that is not kMore (or kMore).
R scan_parts(std::initializer_list<std::string_view> parts, size_t* used_in_last = nullptr) {
  HeadScanner s;
  for (auto p : parts) {
    size_t used = 0;
    R r = s.scan(p, &used);
    if (used_in_last) *used_in_last = used;
    if (r != R::kMore) return r;
  }
  return R::kMore;
}

std::string gathered(const SendQueue& q) {
  iovec iov[16];
  size_t n = q.gather(iov, 16);
  std::string out;
  for (size_t i = 0; i < n; ++i) out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

}  // namespace

TEST_CASE("the head scanner finds the end of a head split anywhere, body bytes untouched", "[wire]") {
  size_t used = 0;
  CHECK(scan_parts({"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody\nwith bare LF"}, &used) == R::kHeadEnd);
  CHECK(used == std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n").size());
  CHECK(scan_parts({"GET / HTTP/1.1\r", "\nHost: x\r", "\n\r", "\n"}, &used) == R::kHeadEnd);
  CHECK(used == 1);
  CHECK(scan_parts({"\r\n\r\nGET / HTTP/1.1\r\n\r\n"}) == R::kHeadEnd);  // leading empty lines
  CHECK(scan_parts({"GET / HTTP/1.1\r\nHost: x\r\n"}) == R::kMore);
}

TEST_CASE("the head scanner rejects bare LF and obs-fold, also across reads", "[wire]") {
  CHECK(scan_parts({"GET / HTTP/1.1\n"}) == R::kBareLf);
  CHECK(scan_parts({"GET / HTTP/1.1\r\nA: b\n"}) == R::kBareLf);
  CHECK(scan_parts({"GET / HTTP/1.1\r\nA: b\r\n\n"}) == R::kBareLf);
  CHECK(scan_parts({"GET / HTTP/1.1\r\nA: b\r\n", " c\r\n\r\n"}) == R::kObsFold);
  CHECK(scan_parts({"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n"}) == R::kObsFold);
  CHECK(scan_parts({"GET / HTTP/1.1\r\nA: b c\r\n\r\n"}) == R::kHeadEnd);  // inner spaces are fine
}

TEST_CASE("response fields: token names, values without CR, LF or NUL, and Date is IMF-fixdate", "[wire]") {
  CHECK(dog::node::valid_field_name("X-Dog_1.a~!"));
  CHECK_FALSE(dog::node::valid_field_name(""));
  CHECK_FALSE(dog::node::valid_field_name("X Bad"));
  CHECK_FALSE(dog::node::valid_field_name("X:Bad"));
  CHECK(dog::node::valid_field_value("text/html; charset=utf-8\t"));
  CHECK_FALSE(dog::node::valid_field_value("a\r\nb"));
  CHECK_FALSE(dog::node::valid_field_value(std::string("a\0b", 3)));
  CHECK(dog::node::http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110's example
}

TEST_CASE("the send queue gathers owned and shared pieces in order and survives partial writes", "[wire]") {
  SendQueue q;
  auto shared = std::make_shared<const std::string>("SHARED");
  q.push_owned("ab");
  q.push_owned("cd");  // joins the same owned buffer
  q.push_shared(shared);
  q.push_owned("ef");
  CHECK(q.bytes() == 12);
  iovec iov[8];
  REQUIRE(q.gather(iov, 8) == 3);
  CHECK(iov[1].iov_base == shared->data());  // the shared buffer itself, not a copy
  CHECK(gathered(q) == "abcdSHAREDef");
  q.consume(3);  // mid-piece
  CHECK(gathered(q) == "dSHAREDef");
  q.consume(4);  // mid the shared piece
  CHECK(gathered(q) == "REDef");
  CHECK(shared.use_count() == 2);
  q.consume(3);
  CHECK(shared.use_count() == 1);  // released once written
  CHECK(gathered(q) == "ef");
  q.consume(2);
  CHECK(q.empty());
  CHECK(q.gather(iov, 8) == 0);
}

TEST_CASE("the send queue keeps a small drained buffer for the next burst and drops a large one", "[wire]") {
  SendQueue q;
  q.push_owned(std::string(1000, 'x'));
  q.consume(1000);
  size_t kept = q.retained_bytes();
  CHECK(kept >= 1000);
  q.push_owned("next");
  CHECK(q.retained_bytes() < kept + 64);  // reused (an empty string still reports its inline 15)
  q.consume(4);
  q.push_owned(std::string(1 << 20, 'y'));
  q.consume(1 << 20);
  CHECK(q.retained_bytes() <= dog::node::kRetainBufferBytes);
}

TEST_CASE("before a 1013 the send queue drops what the kernel has not started on, framing intact", "[wire]") {
  SendQueue q;
  auto a = std::make_shared<const std::string>("FRAME-A");
  auto b = std::make_shared<const std::string>("FRAME-B");
  q.push_shared(a);
  q.push_shared(b);
  q.push_owned("owned");
  q.consume(2);  // FRAME-A is mid-write: it must stay whole on the wire
  CHECK(q.drop_unstarted() == 12);
  CHECK(gathered(q) == "AME-A");
  CHECK(b.use_count() == 1);  // released at once
  q.push_owned("close");
  CHECK(gathered(q) == "AME-Aclose");
  q.consume(10);
  CHECK(q.empty());

  q.push_shared(b);
  q.push_owned("more");
  CHECK(q.drop_unstarted() == 11);  // nothing started: everything goes
  CHECK(q.empty());
  CHECK(b.use_count() == 1);
}
