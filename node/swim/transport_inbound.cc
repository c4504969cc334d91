// AsioTransport, inbound streams: accept with the connection cap, the port-sharing peek that
// hands non-SWIM connections to the foreign handler, and frame reading under the byte budget.
#include <asio/read.hpp>
#include <algorithm>

#include "node/swim/addr.h"
#include "node/swim/transport.h"
#include "node/swim/transport_conn.h"

namespace dog::node::swim {

using transport_detail::kReadChunk;
using transport_detail::load_be32;

void AsioTransport::accept_next() {
  acceptor_.async_accept([this, alive = alive_](std::error_code ec, asio::ip::tcp::socket sock) {
    if (!*alive) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      ++stats_.tcp_rejected;
      // Out of descriptors or similar: back off instead of spinning on the error.
      accept_backoff_.expires_after(std::chrono::milliseconds(100));
      accept_backoff_.async_wait([this, alive](std::error_code e) {
        if (*alive && !e) accept_next();
      });
      return;
    }
    ++stats_.tcp_accepted;
    if (in_.size() >= limits_.max_in_conns || silent_) {
      if (silent_)
        ++stats_.tcp_dropped_injected;
      else
        ++stats_.tcp_rejected;
      std::error_code ignore;
      sock.close(ignore);
    } else {
      auto c = std::make_shared<InConn>(io_.io());
      c->sock = std::move(sock);
      std::error_code e2;
      auto rep = c->sock.remote_endpoint(e2);
      c->peer = e2 ? std::string("?") : format_ip_port(rep.address(), rep.port());
      in_.emplace(c.get(), c);
      arm_in_timer(c);
      if (foreign_)
        peek_first(c);
      else
        read_header(c);
    }
    accept_next();
  });
}

void AsioTransport::peek_first(const std::shared_ptr<InConn>& c) {
  // The idle timer armed at accept bounds this wait (in_idle_timeout).
  c->sock.async_wait(asio::ip::tcp::socket::wait_read, [this, alive = alive_,
                                                        c](std::error_code ec) {
    if (!*alive || c->closed) return;
    if (ec) {
      close_in(c);
      return;
    }
    uint8_t first = 0;
    std::error_code e2;
    c->sock.non_blocking(true, e2);
    const size_t n = c->sock.receive(asio::buffer(&first, 1), asio::socket_base::message_peek, e2);
    std::error_code ignore;
    c->sock.non_blocking(false, ignore);
    if (e2 == asio::error::would_block || e2 == asio::error::try_again) {
      peek_first(c);  // spurious readiness
      return;
    }
    if (e2 || n == 0) {
      close_in(c);  // closed (or reset) before the first byte
      return;
    }
    if (first == 0x00 || !foreign_) {
      read_header(c);
      return;
    }
    // Not a SWIM frame: leave our books and hand the untouched socket over.
    ++stats_.tcp_foreign_adopted;
    c->closed = true;
    ++c->timer_gen;
    c->timer.cancel();
    in_.erase(c.get());
    ForeignStreamHandler adopt = foreign_;  // the handler may replace itself
    adopt(std::move(c->sock));
  });
}

void AsioTransport::read_header(const std::shared_ptr<InConn>& c) {
  asio::async_read(c->sock, asio::buffer(c->header, kPrefix),
                   [this, alive = alive_, c](std::error_code ec, size_t) {
                     if (!*alive || c->closed) return;
                     if (ec) {
                       close_in(c);  // EOF between frames is the normal end of a connection
                       return;
                     }
                     const uint32_t len = load_be32(c->header);
                     if (len == 0 || len > limits_.max_frame_bytes) {
                       ++stats_.tcp_bad_frames;
                       close_in(c);
                       return;
                     }
                     // Reserve nothing for the declared length: bytes are counted against
                     // the inbound budget as they arrive, a chunk at a time, so a peer (keyed
                     // or not) cannot hold the budget with a 4-byte prefix.
                     c->expected = len;
                     c->got = 0;
                     read_chunk(c);
                   });
}

void AsioTransport::read_chunk(const std::shared_ptr<InConn>& c) {
  const size_t chunk = std::min(c->expected - c->got, kReadChunk);
  if (in_buffered_ + chunk > limits_.max_in_buffered_bytes) {
    ++stats_.tcp_rejected;
    close_in(c);
    return;
  }
  in_buffered_ += chunk;
  c->reserved += chunk;
  c->body.resize(c->got + chunk);
  asio::async_read(
      c->sock, asio::buffer(c->body.data() + c->got, chunk),
      [this, alive = alive_, c](std::error_code ec, size_t n) {
        if (!*alive || c->closed) return;
        if (ec) {
          close_in(c);
          return;
        }
        c->got += n;
        if (c->got < c->expected) {
          read_chunk(c);
          return;
        }
        in_buffered_ -= c->reserved;
        c->reserved = 0;
        ++stats_.tcp_frames_received;
        stats_.tcp_bytes_received += kPrefix + c->got;
        if (silent_) {
          ++stats_.tcp_dropped_injected;
        } else if (receiver_) {
          receiver_->on_stream(c->peer, std::span<const uint8_t>(c->body.data(), c->body.size()));
          if (!*alive || c->closed) return;
        }
        if (c->body.capacity() > (64u << 10))
          std::vector<uint8_t>().swap(c->body);  // don't pin big buffers
        arm_in_timer(c);
        read_header(c);
      });
}

void AsioTransport::arm_in_timer(const std::shared_ptr<InConn>& c) {
  const uint64_t gen = ++c->timer_gen;
  c->timer.expires_after(limits_.in_idle_timeout);
  c->timer.async_wait([this, alive = alive_, c, gen](std::error_code ec) {
    if (!*alive || c->closed || ec || gen != c->timer_gen) return;
    ++stats_.tcp_timeouts;
    close_in(c);
  });
}

void AsioTransport::close_in(const std::shared_ptr<InConn>& c) {
  if (c->closed) return;
  c->closed = true;
  in_buffered_ -= c->reserved;
  c->reserved = 0;
  std::error_code ignore;
  c->sock.close(ignore);
  c->timer.cancel();
  in_.erase(c.get());
}

}  // namespace dog::node::swim
