// Cluster addresses: "HOST:PORT" flags resolved to the literal "IP:PORT" form the membership
// transport and rpc dial (node/swim/addr.h). Host names are resolved once, synchronously, at
// start-up or per join attempt (never on a packet path).
#pragma once

#include <asio/ip/tcp.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "node/swim/addr.h"

namespace dog::node::cluster {

// "1.2.3.4:5", "[::1]:5" or "name:5" -> an address. nullopt if malformed or unresolvable;
// `why` (if given) gets a short reason.
std::optional<swim::IpPort> resolve_host_port(std::string_view s, std::string* why = nullptr);

// The TCP endpoint of a literal "IP:PORT" (what peers publish as Meta.rpc_addr).
std::optional<asio::ip::tcp::endpoint> literal_endpoint(std::string_view s);

}  // namespace dog::node::cluster
