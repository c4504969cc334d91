// "HOST:PORT" strings <-> Asio addresses for the membership transport.
//
// The membership core addresses peers by opaque strings. On the real network they are
// "a.b.c.d:port" or "[v6]:port" with a literal IP (no DNS on the hot path), and the transport
// formats inbound source endpoints the same way, so the core can answer a ping to the address it
// came from. Parsing and formatting are allocation-free for IPv4, which is every packet's path.
#pragma once

#include <asio/ip/address.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dog::node::swim {

struct IpPort {
  asio::ip::address ip;
  uint16_t port = 0;
};

// Parses "1.2.3.4:5" or "[::1]:5". Returns nullopt for anything else (hostnames included).
std::optional<IpPort> parse_ip_port(std::string_view s);

// Formats `ip:port` ("[v6]:port" for IPv6) into `out`; returns the length. `out` needs 64 bytes.
size_t format_ip_port(const asio::ip::address& ip, uint16_t port, char* out);
std::string format_ip_port(const asio::ip::address& ip, uint16_t port);

}  // namespace dog::node::swim
