// AsioTransport: construction, binding, datagrams and outbound streams. Inbound streams (accept,
// port sharing, frame reading) are in transport_inbound.cc.
#include "node/swim/transport.h"

#include <asio/connect.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "node/swim/addr.h"
#include "node/swim/transport_conn.h"

namespace dog::node::swim {

using transport_detail::load_be32;
using transport_detail::store_be32;

AsioTransport::AsioTransport(SwimIo& io, const std::string& bind_addr, TransportLimits limits)
    : io_(io), limits_(limits), udp_(io.io()), acceptor_(io.io()), accept_backoff_(io.io()) {
  bind(bind_addr);
}

AsioTransport::~AsioTransport() {
  close();
}

void AsioTransport::bind(const std::string& bind_addr) {
  auto ipp = parse_ip_port(bind_addr);
  if (!ipp) throw std::invalid_argument("bad bind address '" + bind_addr + "': expected IP:PORT");
  const bool pick = ipp->port == 0;
  std::error_code last;
  // With port 0 the UDP socket picks a port and the TCP listener must get the same number;
  // retry a few times if that TCP port happens to be taken.
  for (int attempt = 0; attempt < (pick ? 32 : 1); ++attempt) {
    std::error_code ec;
    asio::ip::udp::endpoint uep(ipp->ip, ipp->port);
    udp_.open(uep.protocol(), ec);
    if (!ec) udp_.bind(uep, ec);
    if (ec) {
      last = ec;
      if (udp_.is_open()) udp_.close();
      if (!pick) break;
      continue;
    }
    const uint16_t port = udp_.local_endpoint().port();
    asio::ip::tcp::endpoint tep(ipp->ip, port);
    acceptor_.open(tep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(tep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      last = ec;
      std::error_code ignore;
      acceptor_.close(ignore);
      udp_.close(ignore);
      continue;
    }
    port_ = port;
    break;
  }
  if (port_ == 0) throw std::system_error(last, "cannot bind " + bind_addr);
  std::error_code ignore;
  udp_.non_blocking(true, ignore);
  // Generous kernel buffers: a seed answers a burst of joins; the kernel caps these at rmem_max.
  udp_.set_option(asio::socket_base::receive_buffer_size(1 << 20), ignore);
  udp_.set_option(asio::socket_base::send_buffer_size(1 << 20), ignore);
  local_addr_ = format_ip_port(ipp->ip, port_);
}

void AsioTransport::start() {
  if (started_ || closed_) return;
  started_ = true;
  wait_udp();
  accept_next();
}

void AsioTransport::close() {
  if (closed_) return;
  closed_ = true;
  *alive_ = false;
  std::error_code ignore;
  udp_.close(ignore);
  acceptor_.close(ignore);
  accept_backoff_.cancel();
  for (auto& [addr, c] : out_) {
    c->closed = true;
    c->sock.close(ignore);
    c->timer.cancel();
  }
  out_.clear();
  for (auto& [p, c] : in_) {
    c->closed = true;
    c->sock.close(ignore);
    c->timer.cancel();
  }
  in_.clear();
  in_buffered_ = 0;
}

// ---------------------------------------------------------------------------------------------
// Datagrams

void AsioTransport::send_datagram(std::string_view to_addr, std::span<const uint8_t> bytes) {
  if (closed_) return;
  if (silent_ || (loss_ > 0 && loss_rng_.unit() < loss_)) {
    ++stats_.udp_dropped_injected;
    return;
  }
  auto ipp = parse_ip_port(to_addr);
  if (!ipp) {
    ++stats_.udp_bad_addr;
    return;
  }
  std::error_code ec;
  const size_t n = udp_.send_to(asio::buffer(bytes.data(), bytes.size()),
                                asio::ip::udp::endpoint(ipp->ip, ipp->port), 0, ec);
  if (ec) {
    ++stats_.udp_send_errors;  // would_block included: best effort, never wait
    return;
  }
  ++stats_.udp_sent;
  stats_.udp_bytes_sent += n;
  if (n > stats_.udp_max_sent) stats_.udp_max_sent = n;
}

void AsioTransport::wait_udp() {
  udp_.async_wait(asio::ip::udp::socket::wait_read, [this, alive = alive_](std::error_code ec) {
    if (!*alive) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      ++stats_.udp_recv_errors;
    }
    drain_udp();
  });
}

void AsioTransport::drain_udp() {
  auto alive = alive_;  // a receiver callback may close or destroy us
  std::vector<uint8_t>& buf = io_.recv_buffer();
  asio::ip::udp::endpoint from;
  char from_str[64];
  bool more = true;
  for (size_t i = 0; i < limits_.udp_drain_batch; ++i) {
    std::error_code ec;
    const size_t n = udp_.receive_from(asio::buffer(buf), from, 0, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      more = false;
      break;
    }
    if (ec) {
      // E.g. a queued ICMP error. Count it and keep draining (bounded by the batch).
      ++stats_.udp_recv_errors;
      continue;
    }
    ++stats_.udp_received;
    stats_.udp_bytes_received += n;
    if (n > limits_.max_datagram_bytes || n == 0) {
      ++stats_.udp_dropped_oversized;
      continue;
    }
    if (silent_) {
      ++stats_.udp_dropped_injected;
      continue;
    }
    if (!receiver_) continue;
    const size_t len = format_ip_port(from.address(), from.port(), from_str);
    receiver_->on_datagram(std::string_view(from_str, len),
                           std::span<const uint8_t>(buf.data(), n));
    if (!*alive) return;
  }
  if (more) {
    // Batch used up with datagrams possibly still queued: the reactor is edge-triggered, so
    // come back through the queue (fair to other sockets) rather than wait for a new edge.
    asio::post(io_.io(), [this, alive] {
      if (*alive) drain_udp();
    });
    return;
  }
  wait_udp();
}

// ---------------------------------------------------------------------------------------------
// Outbound streams

void AsioTransport::send_stream(std::string_view to_addr, std::span<const uint8_t> bytes) {
  if (closed_) return;
  if (silent_) {
    ++stats_.tcp_dropped_injected;
    return;
  }
  if (bytes.empty() || bytes.size() > limits_.max_frame_bytes) {
    ++stats_.tcp_frames_dropped;
    return;
  }
  std::string key(to_addr);
  std::shared_ptr<OutConn> c;
  auto it = out_.find(key);
  if (it != out_.end()) {
    c = it->second;
  } else {
    auto ipp = parse_ip_port(to_addr);
    if (!ipp || (out_.size() >= limits_.max_out_conns && !evict_idle_out())) {
      ++stats_.tcp_frames_dropped;
      return;
    }
    c = std::make_shared<OutConn>(io_.io());
    c->addr = key;
    c->ep = asio::ip::tcp::endpoint(ipp->ip, ipp->port);
    out_.emplace(std::move(key), c);
    open_out(c);
  }
  const size_t frame_bytes = kPrefix + bytes.size();
  if (c->queue.size() >= limits_.max_queue_frames ||
      c->queued_bytes + frame_bytes > limits_.max_queue_bytes) {
    ++stats_.tcp_frames_dropped;
    return;
  }
  std::vector<uint8_t> frame(frame_bytes);
  store_be32(frame.data(), static_cast<uint32_t>(bytes.size()));
  std::memcpy(frame.data() + kPrefix, bytes.data(), bytes.size());
  c->queue.push_back(std::move(frame));
  c->queued_bytes += frame_bytes;
  if (c->connected && !c->writing) write_next(c);
}

bool AsioTransport::evict_idle_out() {
  for (auto& [addr, c] : out_) {
    if (c->connected && !c->writing && c->queue.empty()) {
      const std::shared_ptr<OutConn> victim = c;  // close_out erases the map entry `c` lives in
      close_out(victim, false);
      return true;  // the iterator is invalid now
    }
  }
  return false;
}

void AsioTransport::open_out(const std::shared_ptr<OutConn>& c) {
  ++stats_.tcp_connects;
  arm_out_timer(c, limits_.connect_timeout);
  c->sock.async_connect(c->ep, [this, alive = alive_, c](std::error_code ec) {
    if (!*alive || c->closed) return;
    if (ec) {
      ++stats_.tcp_connect_failures;
      close_out(c, true);
      return;
    }
    c->connected = true;
    std::error_code ignore;
    c->sock.set_option(asio::ip::tcp::no_delay(true), ignore);
    watch_out_eof(c);
    write_next(c);
  });
}

void AsioTransport::write_next(const std::shared_ptr<OutConn>& c) {
  if (c->queue.empty()) {
    c->writing = false;
    arm_out_timer(c, limits_.out_idle_timeout);
    return;
  }
  c->writing = true;
  arm_out_timer(c, limits_.write_timeout);
  // deque::push_back never moves existing elements, so front() stays valid while writing.
  asio::async_write(c->sock, asio::buffer(c->queue.front()),
                    [this, alive = alive_, c](std::error_code ec, size_t n) {
                      if (!*alive || c->closed) return;
                      if (ec) {
                        close_out(c, true);
                        return;
                      }
                      ++stats_.tcp_frames_sent;
                      stats_.tcp_bytes_sent += n;
                      c->queued_bytes -= c->queue.front().size();
                      c->queue.pop_front();
                      write_next(c);
                    });
}

void AsioTransport::watch_out_eof(const std::shared_ptr<OutConn>& c) {
  // The peer never writes on this connection: readability means it closed (or misbehaves).
  c->sock.async_read_some(asio::buffer(&c->eof_probe, 1),
                          [this, alive = alive_, c](std::error_code ec, size_t) {
                            if (!*alive || c->closed || ec == asio::error::operation_aborted)
                              return;
                            close_out(c, !c->queue.empty());
                          });
}

void AsioTransport::arm_out_timer(const std::shared_ptr<OutConn>& c, std::chrono::milliseconds d) {
  const uint64_t gen = ++c->timer_gen;
  c->timer.expires_after(d);
  c->timer.async_wait([this, alive = alive_, c, gen](std::error_code ec) {
    if (!*alive || c->closed || ec || gen != c->timer_gen) return;
    const bool busy = !c->connected || c->writing;
    if (busy) ++stats_.tcp_timeouts;
    close_out(c, busy);
  });
}

void AsioTransport::close_out(const std::shared_ptr<OutConn>& c, bool failed) {
  if (c->closed) return;
  c->closed = true;
  stats_.tcp_frames_dropped += c->queue.size();
  c->queue.clear();
  c->queued_bytes = 0;
  std::error_code ignore;
  c->sock.close(ignore);
  c->timer.cancel();
  auto it = out_.find(c->addr);
  if (it != out_.end() && it->second == c) out_.erase(it);
}

}  // namespace dog::node::swim
