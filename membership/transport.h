// Transport seam of the membership core, shaped like memberlist's transport.go: best-effort
// datagrams plus a reliable, message-framed stream, both addressed by opaque strings.
//
// The core hands the transport sealed bytes (membership/keyring.h); the transport never looks
// inside them. Inbound bytes are delivered back with Swim::on_datagram() / Swim::on_stream() on
// the same event loop that owns the Swim instance.
//
// An Asio implementation (node/) maps `send_datagram` to one UDP sendto and `send_stream` to one
// length-prefixed frame on a TCP connection (opened on demand, cached or closed after use).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace dog::membership {

class Transport {
 public:
  virtual ~Transport() = default;

  // Sends one datagram. Best effort: may be lost, duplicated or reordered. The core never
  // passes more than Config::max_datagram_bytes. Must not block and must not call back into the
  // core synchronously. `bytes` is only valid for the duration of the call.
  virtual void send_datagram(std::string_view to_addr, std::span<const uint8_t> bytes) = 0;

  // Sends one frame reliably and in order with respect to other frames to the same address.
  // Delivery failures are silent (the protocol repairs them with the next push/pull); frames are
  // at most Config::max_stream_bytes. Same non-blocking and lifetime rules as send_datagram.
  virtual void send_stream(std::string_view to_addr, std::span<const uint8_t> bytes) = 0;
};

}  // namespace dog::membership
