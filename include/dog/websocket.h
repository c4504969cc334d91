// dog/websocket.h — one accepted WebSocket, as user code sees it.
//
// Contract
// --------
// * A WebSocket is owned by one loop; call it only from that loop's thread.
// * send() never blocks and never fails loudly: frames queue in memory up to the server's
//   per-connection cap and are written in batches (one sendmsg per loop turn, however many
//   frames are pending, also after a partial write). A peer that lets the queue pass the cap,
//   or stays behind (over kBacklogBytes without the queue ever emptying) for the server's
//   ws_slow_timeout, is closed with 1013 (Try Again Later): the frames not yet started are
//   dropped, a close frame follows, and the handler's on_close sees 1013. Memory stays bounded
//   whatever the client does.
// * Fan-out: make_frames() encodes a message once into an immutable shared buffer, and
//   send_shared() queues a reference to it, so N recipients cost no copy or allocation each.
// * After close() (or once the connection is closing), send() returns false and drops the data.
// * This is an interface so that later layers can hand user code a WebSocket whose client is
//   connected to another node.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace dog::http {

// Queued bytes past which a socket counts as behind: a flush that starts above this arms the
// on_drain notification (WebSocketHandler::on_drain) and the slow-receiver deadline
// (HttpConfig::ws_slow_timeout).
inline constexpr size_t kBacklogBytes = 64 << 10;

// One or more encoded server frames, immutable once made, shared by every queue holding them.
using SharedFrames = std::shared_ptr<const std::string>;

// Encodes `payload` as one unmasked server frame (text or binary) into a new shared buffer.
SharedFrames make_frames(std::string_view payload, bool text = true);

class WebSocket {
 public:
  virtual ~WebSocket() = default;

  // Queues one message. Returns false if the socket is closing or closed (data dropped).
  virtual bool send(std::string_view data, bool text = true) = 0;

  // Queues bytes that are already one or more encoded server frames (ws::encode_frame). Lets a
  // fan-out encode a message once and hand the same bytes to many sockets.
  virtual bool send_encoded(std::string_view frames) = 0;

  // Queues a reference to `frames` (from make_frames), without copying: the fan-out path. Same
  // cap and return value as send(). The default copies through send_encoded().
  virtual bool send_shared(const SharedFrames& frames) { return frames && send_encoded(*frames); }

  // Starts the closing handshake with `code` (1000..4999, not 1005/1006/1015) and `reason`.
  virtual void close(uint16_t code = 1000, std::string_view reason = {}) = 0;

  virtual bool is_open() const = 0;

  // Process-unique id of this connection.
  virtual uint64_t id() const = 0;

  // Bytes queued but not yet accepted by the kernel.
  virtual size_t buffered_bytes() const = 0;

  // Once the connection has ended (from on_close on): true when it did not end with the peer's
  // close frame — no close frame at all, a protocol error this side detected (1002/1007/1009),
  // a failed write, or the send cap. A peer's close frame, whatever its code, is not an error.
  virtual bool ended_by_error() const { return false; }

  // Inbound flow control: while paused, no more bytes are read from the peer, so TCP pushes
  // back on a client that sends faster than its handler keeps up. Frames already read are
  // still delivered. Idempotent.
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
};

// True if `s` is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points past
// U+10FFFF), the rule for a text frame's payload. An app that sends a binary message on as
// text checks it first, or every compliant receiver closes with 1007.
bool valid_utf8(std::string_view s);

}  // namespace dog::http
