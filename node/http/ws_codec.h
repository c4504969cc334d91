// WebSocket framing (RFC 6455 §5) as a sans-IO state machine: bytes in, events out.
//
// The decoder never touches a socket or a clock. Feed it whatever bytes arrived; it emits
// complete messages, control frames, or one protocol error carrying the close code the
// endpoint must send. After an error the decoder is dead: feed() ignores further input.
//
// Enforced (server role, i.e. decoding client frames):
//   1002  unmasked client frame, reserved bits or opcodes, fragmented or oversized (>125)
//         control frame, continuation without a start, a new data frame inside a fragmented
//         message, a 64-bit length with its top bit set, a malformed close payload
//   1007  invalid UTF-8 in a text message or in a close reason
//   1009  a message (after reassembly) longer than `max_message_bytes`
// Memory is bounded by max_message_bytes plus one frame header.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dog::http::ws {

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes used by the front door (RFC 6455 §7.4.1).
namespace close_code {
inline constexpr uint16_t kNormal = 1000;
inline constexpr uint16_t kGoingAway = 1001;
inline constexpr uint16_t kProtocolError = 1002;
inline constexpr uint16_t kNoStatus = 1005;     // never sent on the wire
inline constexpr uint16_t kAbnormal = 1006;     // never sent on the wire
inline constexpr uint16_t kInvalidData = 1007;
inline constexpr uint16_t kPolicy = 1008;
inline constexpr uint16_t kTooBig = 1009;
inline constexpr uint16_t kInternalError = 1011;
}  // namespace close_code

// True if `code` may appear in a close frame on the wire.
bool valid_close_code(uint16_t code);

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool valid_utf8(std::string_view s);

enum class Role { kServer, kClient };

// Receives decoder output. Views are valid only during the call.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void on_message(std::string_view payload, bool text) = 0;
  virtual void on_ping(std::string_view payload) = 0;
  virtual void on_pong(std::string_view payload) = 0;
  // A well-formed close frame. `code` is kNoStatus when the frame carried no code.
  virtual void on_close(uint16_t code, std::string_view reason) = 0;
  // The peer violated the protocol; the endpoint must close with `code`. Called at most once.
  virtual void on_protocol_error(uint16_t code, std::string_view why) = 0;
};

class Decoder {
 public:
  Decoder(Role role, size_t max_message_bytes) : role_(role), max_message_(max_message_bytes) {}

  // Consumes all of `bytes`, emitting events to `sink` as frames complete.
  void feed(std::string_view bytes, FrameSink& sink);

  bool failed() const { return failed_; }

  // Capacity held by the reassembly buffers. A message buffer over 64 KiB is released once its
  // message has been delivered.
  size_t retained_bytes() const { return message_.capacity() + control_.capacity(); }

 private:
  void fail(FrameSink& sink, uint16_t code, std::string_view why);
  bool start_frame(FrameSink& sink);  // validates the parsed header; false on error
  void finish_frame(FrameSink& sink);

  Role role_;
  size_t max_message_;
  bool failed_ = false;

  // Header being parsed (at most 14 bytes).
  uint8_t header_[14];
  size_t header_have_ = 0;

  // Current frame.
  bool in_payload_ = false;
  bool fin_ = false;
  Opcode opcode_ = Opcode::kContinuation;
  bool masked_ = false;
  uint8_t mask_[4] = {0, 0, 0, 0};
  uint64_t remaining_ = 0;
  uint64_t frame_pos_ = 0;  // payload bytes of this frame seen so far (for the mask index)

  // Message reassembly (data frames) and the current control frame's payload.
  bool in_message_ = false;
  bool message_text_ = false;
  std::string message_;
  std::string control_;
};

// Appends one frame to `out`. In client role the payload is masked with `mask_key`
// (callers draw it from a CSPRNG); in server role frames are unmasked, so one encoded frame can
// be shared by every socket it is sent to.
void encode_frame(std::string& out, Opcode op, std::string_view payload, bool fin = true,
                  Role role = Role::kServer, uint32_t mask_key = 0);

// The payload of a close frame: a 2-byte code and a reason truncated to fit 125 bytes.
std::string close_payload(uint16_t code, std::string_view reason);

}  // namespace dog::http::ws
