// AsioTransport: membership::Transport over real sockets on one node::Loop.
//
//  * Datagrams: ONE non-blocking UDP socket bound to the member's address, used both to send and
//    to receive, so a ping's source address is where the ack must go. Sends are a single
//    sendto(); if the kernel buffer is full the datagram is dropped and counted (best effort,
//    never blocks). Receives are reactor style: wait for readability, then drain up to
//    `udp_drain_batch` datagrams into the loop-wide 64 KiB buffer.
//  * Streams: TCP on the same port number. Each frame is [u32 big-endian length][sealed bytes],
//    length in [1, max_frame_bytes]. Outbound connections are opened on demand, one per peer
//    address, cached while busy and closed after `out_idle_timeout`; their queues are bounded in
//    frames and bytes, and a connect or write that overruns its timeout closes the connection and
//    drops what was queued (the protocol repairs lost push/pulls). Inbound connections are capped
//    in number and in total buffered bytes and closed after `in_idle_timeout` without a full frame.
//    A frame's bytes count against the budget as they arrive (64 KiB chunks), never on the word
//    of its length prefix alone.
//  * Nothing the peer sends can crash the node: bad lengths close the connection, oversized
//    datagrams are dropped, and all of it is counted in TransportStats. What passes is handed to
//    the Receiver as opaque bytes (the core authenticates and decodes them).
//  * Fault injection for tests and dog-swim-bench: `set_silent(true)` drops every packet in and
//    out (a crashed member that still holds its ports), `set_send_loss(p)` drops each outgoing
//    datagram with probability p.
//
// Thread-safety: none; owned by one loop. Delivery to the Receiver always happens from an Asio
// handler, never from inside send_datagram()/send_stream(), as membership/transport.h requires.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "membership/rng.h"
#include "membership/transport.h"
#include "node/swim/swim_io.h"

namespace dog::node::swim {

struct TransportLimits {
  size_t max_datagram_bytes = 1400;          // inbound datagrams above this are dropped
  size_t max_frame_bytes = 8u << 20;         // stream frame cap, both directions
  size_t max_out_conns = 1024;               // cached outbound connections (idle ones are evicted)
  size_t max_in_conns = 1024;                // accepted connections beyond this are closed at once
  size_t max_queue_frames = 32;              // per outbound connection
  size_t max_queue_bytes = 16u << 20;        // per outbound connection
  size_t max_in_buffered_bytes = 64u << 20;  // frames being read, summed over inbound connections
  size_t udp_drain_batch = 64;               // datagrams read per readiness event
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds write_timeout{5000};     // per frame, from the start of its write
  std::chrono::milliseconds out_idle_timeout{3000};  // close an outbound connection idle this long
  // Close an inbound connection that completes no frame for this long.
  std::chrono::milliseconds in_idle_timeout{15000};
};

struct TransportStats {
  uint64_t udp_sent = 0;
  uint64_t udp_bytes_sent = 0;  // payload bytes (sealed), without IP/UDP headers
  uint64_t udp_max_sent = 0;
  uint64_t udp_send_errors = 0;  // kernel refused (buffer full, unreachable, ...)
  uint64_t udp_bad_addr = 0;     // destination string did not parse
  uint64_t udp_received = 0;
  uint64_t udp_bytes_received = 0;
  uint64_t udp_dropped_oversized = 0;
  uint64_t udp_dropped_injected = 0;  // set_silent / set_send_loss
  uint64_t udp_recv_errors = 0;

  uint64_t tcp_frames_sent = 0;     // fully written
  uint64_t tcp_bytes_sent = 0;      // including the 4-byte length prefix
  uint64_t tcp_frames_dropped = 0;  // queue full, connection limit, connect/write failure
  uint64_t tcp_connects = 0;
  uint64_t tcp_connect_failures = 0;
  uint64_t tcp_timeouts = 0;  // connect/write/idle-read deadline hit
  uint64_t tcp_accepted = 0;
  uint64_t tcp_rejected = 0;  // over max_in_conns or the inbound byte budget
  uint64_t tcp_frames_received = 0;
  uint64_t tcp_bytes_received = 0;
  uint64_t tcp_bad_frames = 0;  // zero or over-cap length: connection closed
  uint64_t tcp_dropped_injected = 0;
  uint64_t tcp_foreign_adopted = 0;  // accepted connections handed to the foreign handler
};

class AsioTransport final : public membership::Transport {
 public:
  class Receiver {
   public:
    virtual ~Receiver() = default;
    virtual void on_datagram(std::string_view from, std::span<const uint8_t> bytes) = 0;
    virtual void on_stream(std::string_view from, std::span<const uint8_t> bytes) = 0;
  };

  // Binds UDP and TCP to `bind_addr` ("ip:port"). Port 0 picks a port free for both protocols.
  // Throws std::system_error / std::invalid_argument if the address is bad or cannot be bound.
  AsioTransport(SwimIo& io, const std::string& bind_addr, TransportLimits limits);
  ~AsioTransport() override;
  AsioTransport(const AsioTransport&) = delete;
  AsioTransport& operator=(const AsioTransport&) = delete;

  // Starts receiving. `r` must outlive the transport or a later set_receiver(nullptr).
  void set_receiver(Receiver* r) { receiver_ = r; }
  void start();
  // Closes every socket; nothing is delivered afterwards.
  void close();

  // Port sharing (issue 11: SWIM UDP, SWIM streams and RPC on TCP, all on one port).
  // Once set, every accepted TCP connection (within max_in_conns; the others are closed as
  // before) is first peeked: the transport waits until it is readable, at most in_idle_timeout,
  // and looks at its first byte with MSG_PEEK, consuming nothing. SWIM frames begin with a
  // big-endian u32 length <= 8 MiB, so their first byte is always 0x00; a connection whose first
  // byte is anything else (the RPC handshake begins with 'D','O','G','R','P','C') is moved to
  // `adopt` with all its bytes still unread, and leaves the transport's books (in_conns, limits,
  // timers). A connection that closes or stays silent before its first byte is closed and
  // counted as today. `adopt` runs from an Asio handler on this transport's loop; it may call
  // set_foreign_stream_handler but must not destroy the transport. An empty function turns
  // sharing off (connections accepted later are read as SWIM streams).
  using ForeignStreamHandler = std::function<void(asio::ip::tcp::socket)>;
  void set_foreign_stream_handler(ForeignStreamHandler adopt) { foreign_ = std::move(adopt); }

  const std::string& local_addr() const { return local_addr_; }
  uint16_t port() const { return port_; }
  const TransportStats& stats() const { return stats_; }
  // Starts a new measurement window for udp_max_sent (the benchmark's steady phase).
  void reset_udp_max_sent() { stats_.udp_max_sent = 0; }
  size_t out_conns() const { return out_.size(); }
  size_t in_conns() const { return in_.size(); }
  // Inbound frame bytes buffered now (received, or a chunk being received), all connections.
  size_t in_buffered_bytes() const { return in_buffered_; }

  void set_silent(bool silent) { silent_ = silent; }
  void set_send_loss(double p, uint64_t seed) {
    loss_ = p;
    loss_rng_ = membership::Rng(seed);
  }

  // membership::Transport
  void send_datagram(std::string_view to_addr, std::span<const uint8_t> bytes) override;
  void send_stream(std::string_view to_addr, std::span<const uint8_t> bytes) override;

 private:
  struct OutConn;
  struct InConn;
  friend struct OutConn;
  friend struct InConn;

  void bind(const std::string& bind_addr);
  void wait_udp();
  void drain_udp();
  void accept_next();
  void open_out(const std::shared_ptr<OutConn>& c);
  void write_next(const std::shared_ptr<OutConn>& c);
  void watch_out_eof(const std::shared_ptr<OutConn>& c);
  void arm_out_timer(const std::shared_ptr<OutConn>& c, std::chrono::milliseconds d);
  void close_out(const std::shared_ptr<OutConn>& c, bool failed);
  bool evict_idle_out();
  void peek_first(const std::shared_ptr<InConn>& c);
  void read_header(const std::shared_ptr<InConn>& c);
  void read_chunk(const std::shared_ptr<InConn>& c);
  void arm_in_timer(const std::shared_ptr<InConn>& c);
  void close_in(const std::shared_ptr<InConn>& c);

  SwimIo& io_;
  TransportLimits limits_;
  Receiver* receiver_ = nullptr;
  ForeignStreamHandler foreign_;
  asio::ip::udp::socket udp_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer accept_backoff_;  // after an accept error (e.g. EMFILE), retry later
  std::string local_addr_;
  uint16_t port_ = 0;
  bool started_ = false;
  bool closed_ = false;
  bool silent_ = false;
  double loss_ = 0;
  membership::Rng loss_rng_{1};
  std::unordered_map<std::string, std::shared_ptr<OutConn>> out_;
  std::unordered_map<const InConn*, std::shared_ptr<InConn>> in_;
  size_t in_buffered_ = 0;
  TransportStats stats_;
  // Handlers hold this; it turns false when the transport is closed or destroyed.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dog::node::swim
