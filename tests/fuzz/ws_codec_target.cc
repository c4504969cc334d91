// Target: the WebSocket frame decoder (node/http/ws_codec.h), in both roles.
//
// Input: [flags][split seed][frames...]. Bit 0 of flags picks the role (server: client frames
// must be masked), bits 1-2 the message cap (125 B, 1 KiB, 64 KiB, 1 MiB). The bytes are
// decoded twice: in one feed, and in pieces whose sizes come from the split seed; both runs
// must report the same events (the decoder's state must not depend on how TCP cut the bytes).
// Checked per event: messages within the cap, text messages valid UTF-8, control payloads
// <= 125 bytes, close codes valid on the wire, at most one protocol error and nothing after it.
#include <string>
#include <vector>

#include "node/http/ws_codec.h"
#include "tests/fuzz/targets.h"

namespace dog::fuzz {
namespace {

using namespace dog::http::ws;

struct Log final : FrameSink {
  explicit Log(size_t cap) : cap(cap) {}
  size_t cap;
  bool failed = false;
  std::vector<std::string> events;

  void event(char kind, std::string_view payload, uint16_t code = 0) {
    fuzz_check(!failed, "no event after a protocol error");
    std::string e(1, kind);
    e += std::to_string(code);
    e += ':';
    e += payload;
    events.push_back(std::move(e));
  }
  void on_message(std::string_view p, bool text) override {
    fuzz_check(p.size() <= cap, "a message is within max_message_bytes");
    if (text) fuzz_check(valid_utf8(p), "a text message is valid UTF-8");
    event(text ? 't' : 'b', p);
  }
  void on_ping(std::string_view p) override {
    fuzz_check(p.size() <= 125, "a ping payload is at most 125 bytes");
    event('i', p);
  }
  void on_pong(std::string_view p) override {
    fuzz_check(p.size() <= 125, "a pong payload is at most 125 bytes");
    event('o', p);
  }
  void on_close(uint16_t code, std::string_view reason) override {
    fuzz_check(code == close_code::kNoStatus || valid_close_code(code), "a close code is valid");
    fuzz_check(valid_utf8(reason), "a close reason is valid UTF-8");
    event('c', reason, code);
  }
  void on_protocol_error(uint16_t code, std::string_view) override {
    fuzz_check(code == close_code::kProtocolError || code == close_code::kInvalidData ||
                   code == close_code::kTooBig,
               "a protocol error closes with 1002, 1007 or 1009");
    event('e', "", code);
    failed = true;
  }
};

}  // namespace

int ws_codec(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t flags = in.u8();
  uint8_t seed = in.u8();
  const Role role = flags & 1 ? Role::kClient : Role::kServer;
  static constexpr size_t kCaps[] = {125, 1 << 10, 64 << 10, 1 << 20};
  const size_t cap = kCaps[(flags >> 1) & 3];
  size_t n = 0;
  const uint8_t* p = in.rest(&n);
  const std::string_view bytes(reinterpret_cast<const char*>(p), n);

  Log whole(cap);
  Decoder a(role, cap);
  a.feed(bytes, whole);
  fuzz_check(a.failed() == whole.failed, "failed() reports the protocol error");

  Log pieces(cap);
  Decoder b(role, cap);
  for (size_t at = 0; at < bytes.size();) {
    seed = static_cast<uint8_t>(seed * 37 + 11);
    size_t len = std::min<size_t>(bytes.size() - at, 1 + seed % 23);
    b.feed(bytes.substr(at, len), pieces);
    at += len;
  }
  fuzz_check(whole.events == pieces.events, "the same events however the bytes are cut");
  return 0;
}

}  // namespace dog::fuzz
