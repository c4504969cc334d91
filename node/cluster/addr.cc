#include "node/cluster/addr.h"

#include <asio/io_context.hpp>
#include <charconv>

namespace dog::node::cluster {

std::optional<swim::IpPort> resolve_host_port(std::string_view s, std::string* why) {
  if (auto lit = swim::parse_ip_port(s)) return lit;
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) {
    if (why) *why = "want HOST:PORT";
    return std::nullopt;
  }
  const std::string_view host = s.substr(0, colon), port_s = s.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_s.data(), port_s.data() + port_s.size(), port);
  if (ec != std::errc() || end != port_s.data() + port_s.size() || port > 65535) {
    if (why) *why = "bad port";
    return std::nullopt;
  }
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  std::error_code err;
  auto results = resolver.resolve(std::string(host), std::string(port_s), err);
  if (err || results.empty()) {
    if (why) *why = "cannot resolve " + std::string(host) + (err ? ": " + err.message() : "");
    return std::nullopt;
  }
  // Prefer IPv4: the common case on a LAN, and what a host name in a container resolves to.
  for (const auto& r : results)
    if (r.endpoint().address().is_v4())
      return swim::IpPort{r.endpoint().address(), static_cast<uint16_t>(port)};
  return swim::IpPort{results.begin()->endpoint().address(), static_cast<uint16_t>(port)};
}

std::optional<asio::ip::tcp::endpoint> literal_endpoint(std::string_view s) {
  auto a = swim::parse_ip_port(s);
  if (!a || a->port == 0) return std::nullopt;
  return asio::ip::tcp::endpoint(a->ip, a->port);
}

}  // namespace dog::node::cluster
