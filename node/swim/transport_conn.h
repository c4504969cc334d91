// Private to node/swim/transport*.cc: the per-connection state of AsioTransport and the frame
// prefix codec. Not part of the API.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "node/swim/transport.h"

namespace dog::node::swim {

namespace transport_detail {
inline constexpr size_t kPrefix = 4;  // [u32 big-endian length]
inline constexpr size_t kReadChunk = 64u << 10;  // inbound frame bytes buffered (and budgeted) per read

inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
}  // namespace transport_detail

using transport_detail::kPrefix;

struct AsioTransport::OutConn {
  explicit OutConn(asio::io_context& io) : sock(io), timer(io) {}
  std::string addr;
  asio::ip::tcp::endpoint ep;
  asio::ip::tcp::socket sock;
  asio::steady_timer timer;
  std::deque<std::vector<uint8_t>> queue;  // each element is one prefixed frame
  size_t queued_bytes = 0;
  bool connected = false;
  bool writing = false;
  bool closed = false;
  uint64_t timer_gen = 0;
  uint8_t eof_probe = 0;
};

struct AsioTransport::InConn {
  explicit InConn(asio::io_context& io) : sock(io), timer(io) {}
  asio::ip::tcp::socket sock;
  asio::steady_timer timer;
  std::string peer;
  uint8_t header[kPrefix] = {};
  std::vector<uint8_t> body;
  size_t reserved = 0;  // bytes counted against in_buffered_ (received or being received)
  size_t expected = 0;  // frame length from the prefix
  size_t got = 0;       // body bytes received so far
  bool closed = false;
  uint64_t timer_gen = 0;
};

}  // namespace dog::node::swim
