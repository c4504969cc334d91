// dog::node::HttpServer — the HTTP/1.1 and WebSocket front door of a node.
//
// Contract
// --------
// * A server belongs to one Loop and runs every connection, handler call and WebSocket on it.
//   To use more cores, run one Loop per core, each with its own server on the same port
//   (`reuse_port`); the kernel spreads connections between them.
// * Requests on one connection are handled one at a time, in order (pipelined requests queue
//   in the socket buffer, not in memory); responses to pipelined requests are written in
//   batches.
// * Every limit answers with a clear status and closes the connection: over-long request line
//   414, headers 431, body 413, malformed 400 (RFC 9112 strict: bare LF, obs-fold, CL with TE,
//   duplicate Content-Length, a missing or repeated Host), slow headers or body 408. A bad
//   WebSocket handshake gets 400, or 426 for a wrong version; a handler that accepts a WebSocket
//   on a plain request 426. Every 426 carries `Upgrade: websocket`.
// * Responses carry Date. A handler header with CR, LF or NUL, or a name that is not a token,
//   turns the response into a 500 (no response splitting). Trailers are dropped.
// * An accept() error (EMFILE...) backs off from 10 ms to 1 s instead of spinning.
// * A handler that throws produces a 500; nothing a client sends can take the node down or
//   affect other connections.
// * shutdown() stops accepting, closes idle connections, lets in-flight requests finish (their
//   responses carry `Connection: close`), sends 1001 to WebSockets, and forcibly closes what is
//   left at the deadline.
#pragma once

#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "dog/http.h"
#include "node/loop.h"

namespace dog::node {

struct HttpConfig {
  // Longest request-target accepted (414 beyond). Default: 8 KiB.
  size_t max_url_bytes = 8 << 10;
  // Total bytes of all header names and values (431 beyond). Default: 16 KiB.
  size_t max_header_bytes = 16 << 10;
  // Number of header fields (431 beyond). Default: 100.
  size_t max_headers = 100;
  // Request body, after de-chunking (413 beyond). Default: 1 MiB.
  size_t max_body_bytes = 1 << 20;
  // From the first byte of a request to the end of its headers (408 beyond). This is the
  // slowloris bound: trickling bytes does not extend it. Default: 10 s.
  std::chrono::milliseconds header_timeout{10'000};
  // Keep-alive idle time between requests, and the longest gap between reads of a body or
  // writes of a response. Default: 60 s.
  std::chrono::milliseconds idle_timeout{60'000};
  // From the end of a request's headers to the end of its body (408 beyond), however steadily
  // the bytes trickle in. Default: 120 s.
  std::chrono::milliseconds body_timeout{120'000};
  // Largest WebSocket message after reassembly (close 1009 beyond). Default: 1 MiB.
  size_t max_ws_message_bytes = 1 << 20;
  // Per-WebSocket bytes queued for a peer that is not reading; past it the peer is dropped.
  // Default: 4 MiB.
  size_t max_ws_send_queue_bytes = 4 << 20;
  // A WebSocket whose queue passed http::kBacklogBytes and has not been fully written since,
  // for this long, is closed with 1013 like one past the cap (a fan-out that pauses its
  // publishers while a receiver is behind would otherwise wait on it forever). 0 disables.
  // Default: 10 s.
  std::chrono::milliseconds ws_slow_timeout{10'000};
  // How long to wait for the peer's close frame after sending ours. Default: 5 s.
  std::chrono::milliseconds ws_close_timeout{5'000};
  // A WebSocket silent this long gets a ping; silent for another interval after it, it is
  // dropped (on_close sees 1006). Catches peers that vanished without a FIN. 0 disables.
  // Default: 30 s.
  std::chrono::milliseconds ws_ping_interval{30'000};
  // Connections beyond this are accepted and closed at once. Default: 10000.
  size_t max_connections = 10'000;
  // SO_REUSEPORT, for one server per loop on the same port. Default: off.
  bool reuse_port = false;

  static HttpConfig defaults() { return {}; }
  // Tight limits and short timeouts, for tests.
  static HttpConfig testing();
};

struct HttpStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_open = 0;
  uint64_t connections_rejected = 0;  // over max_connections
  uint64_t accept_errors = 0;         // accept() failed (EMFILE, ENFILE, ENOBUFS...); retried with back-off
  uint64_t requests = 0;
  uint64_t bad_requests = 0;          // answered 4xx by the server itself
  uint64_t handler_errors = 0;        // handler threw: 500
  uint64_t timeouts = 0;
  uint64_t ws_opened = 0;
  uint64_t ws_open = 0;
  uint64_t ws_protocol_errors = 0;
  uint64_t ws_overflow_drops = 0;     // receivers closed with 1013: over the send cap, or behind past ws_slow_timeout
  uint64_t ws_write_calls = 0;        // sendmsg calls on WebSockets (one per socket per loop turn at most)
  uint64_t ws_messages_in = 0;        // complete messages read from clients
  uint64_t ws_bytes_in = 0;           // their payload bytes
  uint64_t ws_messages_out = 0;       // messages queued to clients (send, send_shared, send_encoded)
  uint64_t ws_bytes_out = 0;          // bytes the kernel took on WebSockets (frames, headers included)
};

class HttpServer {
 public:
  HttpServer(Loop& loop, HttpConfig config, http::Handler handler);
  ~HttpServer();  // closes everything at once; call shutdown() first for a graceful stop
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Throws std::system_error if the address cannot be bound.
  void listen(const asio::ip::tcp::endpoint& endpoint);
  asio::ip::tcp::endpoint local_endpoint() const;

  // Graceful stop; `done` runs on the loop once every connection is gone.
  void shutdown(std::chrono::milliseconds deadline, std::function<void()> done);

  const HttpStats& stats() const;

  // Bytes of buffer capacity held by open connections and WebSockets (read buffers included).
  // Walks every connection: for tests and occasional metrics, not per request.
  size_t buffer_bytes() const;
  // Open HTTP connections plus WebSocket sessions: what max_connections is compared against
  // (an upgraded connection counts once, as its session).
  size_t open_count() const;

  struct State;

 private:
  void accept();
  Loop& loop_;
  std::shared_ptr<State> state_;
};

// Parses "HOST:PORT" where HOST is an IPv4 address, [IPv6], `localhost` (127.0.0.1) or empty
// (0.0.0.0); no other name is resolved. Throws std::invalid_argument with a message naming the
// bad part.
asio::ip::tcp::endpoint parse_endpoint(std::string_view host_port);

}  // namespace dog::node
