// The sans-IO WebSocket codec: bytes in, events out, no sockets.
#include <catch2/catch.hpp>

#include <vector>

#include "node/http/ws_codec.h"

namespace ws = dog::http::ws;

namespace {
struct Recorder : ws::FrameSink {
  std::vector<std::string> messages;
  std::vector<bool> text;
  std::vector<std::string> pings, pongs;
  int close_code = 0;
  std::string close_reason;
  int error = 0;
  void on_message(std::string_view p, bool t) override { messages.emplace_back(p); text.push_back(t); }
  void on_ping(std::string_view p) override { pings.emplace_back(p); }
  void on_pong(std::string_view p) override { pongs.emplace_back(p); }
  void on_close(uint16_t c, std::string_view r) override { close_code = c; close_reason = r; }
  void on_protocol_error(uint16_t c, std::string_view) override { error = c; }
};

std::string client_frame(ws::Opcode op, std::string_view payload, bool fin = true) {
  std::string f;
  ws::encode_frame(f, op, payload, fin, ws::Role::kClient, 0xa1b2c3d4);
  return f;
}
}  // namespace

TEST_CASE("UTF-8 validation follows RFC 3629", "[ws]") {
  struct Case { std::string bytes; bool valid; };
  std::vector<Case> cases = {
      {"", true}, {"plain ascii, long enough for the fast path", true},
      {"\xc3\xa9", true},                 // é
      {"\xe2\x82\xac", true},             // €
      {"\xf0\x9f\x98\x80", true},         // 😀
      {"\xc0\xaf", false},                // overlong '/'
      {"\xe0\x80\xaf", false},            // overlong 3-byte
      {"\xed\xa0\x80", false},            // UTF-16 surrogate
      {"\xf4\x90\x80\x80", false},        // > U+10FFFF
      {"\xc3", false},                    // truncated
      {"abc\x80", false},                 // stray continuation
      {"\xff", false},
  };
  for (const auto& c : cases) {
    INFO("bytes of length " << c.bytes.size());
    CHECK(ws::valid_utf8(c.bytes) == c.valid);
  }
}

TEST_CASE("frames decode identically whatever the read boundaries", "[ws]") {
  std::string stream = client_frame(ws::Opcode::kText, "hello") +
                       client_frame(ws::Opcode::kBinary, std::string(300, '\x01')) +
                       client_frame(ws::Opcode::kText, "fra", false) +
                       client_frame(ws::Opcode::kPing, "p") +  // control frame between fragments
                       client_frame(ws::Opcode::kContinuation, "gmented") +
                       client_frame(ws::Opcode::kBinary, std::string(70000, 'x'));
  for (size_t step : {size_t(1), size_t(3), size_t(7), size_t(1000), stream.size()}) {
    Recorder r;
    ws::Decoder d(ws::Role::kServer, 1 << 20);
    for (size_t at = 0; at < stream.size(); at += step) d.feed(std::string_view(stream).substr(at, step), r);
    INFO("step " << step);
    REQUIRE(r.messages.size() == 4);
    CHECK(r.messages[0] == "hello");
    CHECK(r.text[0]);
    CHECK(r.messages[1] == std::string(300, '\x01'));
    CHECK_FALSE(r.text[1]);
    CHECK(r.messages[2] == "fragmented");
    CHECK(r.messages[3].size() == 70000);
    CHECK(r.pings == std::vector<std::string>{"p"});
    CHECK(r.error == 0);
  }
}

TEST_CASE("protocol violations map to the RFC 6455 close codes", "[ws]") {
  struct Case { const char* name; std::string bytes; int code; };
  std::string unmasked;
  ws::encode_frame(unmasked, ws::Opcode::kText, "hi");  // server role: no mask
  std::string rsv = client_frame(ws::Opcode::kText, "x");
  rsv[0] |= 0x40;
  std::string badop = client_frame(ws::Opcode::kText, "x");
  badop[0] = static_cast<char>((badop[0] & 0xF0) | 0x3);
  std::vector<Case> cases = {
      {"unmasked client frame", unmasked, 1002},
      {"reserved bit", rsv, 1002},
      {"reserved opcode", badop, 1002},
      {"fragmented ping", client_frame(ws::Opcode::kPing, "p", false), 1002},
      {"control frame over 125 bytes", client_frame(ws::Opcode::kPing, std::string(126, 'p')), 1002},
      {"continuation with no message", client_frame(ws::Opcode::kContinuation, "x"), 1002},
      {"new message inside a fragmented one",
       client_frame(ws::Opcode::kText, "a", false) + client_frame(ws::Opcode::kText, "b"), 1002},
      {"invalid UTF-8 text", client_frame(ws::Opcode::kText, "\xc0\xaf"), 1007},
      {"invalid UTF-8 across fragments",
       client_frame(ws::Opcode::kText, "\xe2\x82", false) + client_frame(ws::Opcode::kContinuation, "x"), 1007},
      {"message over the cap", client_frame(ws::Opcode::kBinary, std::string(2000, 'b')), 1009},
      {"fragments over the cap",
       client_frame(ws::Opcode::kBinary, std::string(600, 'b'), false) +
           client_frame(ws::Opcode::kContinuation, std::string(600, 'b')), 1009},
      {"close with 1 byte", client_frame(ws::Opcode::kClose, "x"), 1002},
      {"close with code 1005", client_frame(ws::Opcode::kClose, ws::close_payload(1005, "")), 1002},
      {"close with code 999", client_frame(ws::Opcode::kClose, std::string("\x03\xe7", 2)), 1002},
      {"close reason not UTF-8", client_frame(ws::Opcode::kClose, std::string("\x03\xe8\xff", 3)), 1007},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    Recorder r;
    ws::Decoder d(ws::Role::kServer, 1024);
    d.feed(c.bytes, r);
    CHECK(r.error == c.code);
    CHECK(r.messages.empty());
    CHECK(d.failed());
    // After a failure the decoder ignores input instead of emitting more events.
    d.feed(client_frame(ws::Opcode::kText, "later"), r);
    CHECK(r.messages.empty());
  }
}

TEST_CASE("the message cap is checked against the announced length before buffering", "[ws]") {
  // A header that claims 2^40 bytes must fail at once, without allocating.
  std::string hdr = "\x82\xff";
  for (int i = 7; i >= 0; --i) hdr.push_back(static_cast<char>((uint64_t(1) << 40) >> (8 * i)));
  hdr += "\x01\x02\x03\x04";
  Recorder r;
  ws::Decoder d(ws::Role::kServer, 1 << 20);
  d.feed(hdr, r);
  CHECK(r.error == 1009);
}

TEST_CASE("close frames carry code and reason, and an empty close means no status", "[ws]") {
  Recorder a, b;
  ws::Decoder da(ws::Role::kServer, 1024), db(ws::Role::kServer, 1024);
  da.feed(client_frame(ws::Opcode::kClose, ws::close_payload(4001, "bye")), a);
  CHECK(a.close_code == 4001);
  CHECK(a.close_reason == "bye");
  db.feed(client_frame(ws::Opcode::kClose, ""), b);
  CHECK(b.close_code == ws::close_code::kNoStatus);
}

TEST_CASE("close_payload truncates long reasons on a UTF-8 boundary", "[ws]") {
  std::string reason;
  for (int i = 0; i < 100; ++i) reason += "\xc3\xa9";  // 200 bytes of é
  auto p = ws::close_payload(1000, reason);
  CHECK(p.size() <= 125);
  CHECK(ws::valid_utf8(p.substr(2)));
}

TEST_CASE("client role rejects masked server frames and decodes unmasked ones", "[ws]") {
  Recorder r;
  ws::Decoder d(ws::Role::kClient, 1024);
  std::string f;
  ws::encode_frame(f, ws::Opcode::kText, "from server");
  d.feed(f, r);
  REQUIRE(r.messages.size() == 1);
  CHECK(r.messages[0] == "from server");
  d.feed(client_frame(ws::Opcode::kText, "masked"), r);
  CHECK(r.error == 1002);
}
