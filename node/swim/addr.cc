#include "node/swim/addr.h"

#include <cstring>

namespace dog::node::swim {

namespace {

bool parse_port(std::string_view p, uint16_t* out) {
  if (p.empty() || p.size() > 5) return false;
  uint32_t v = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

// Strict dotted quad: four decimal octets, no leading '+', at most 3 digits each.
bool parse_v4(std::string_view s, asio::ip::address_v4::bytes_type* out) {
  size_t i = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
    uint32_t v = 0;
    size_t digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && digits < 4) {
      v = v * 10 + static_cast<uint32_t>(s[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0 || digits > 3 || v > 255) return false;
    (*out)[octet] = static_cast<uint8_t>(v);
  }
  return i == s.size();
}

}  // namespace

std::optional<IpPort> parse_ip_port(std::string_view s) {
  IpPort r;
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return std::nullopt;
    if (!parse_port(s.substr(close + 2), &r.port)) return std::nullopt;
    std::error_code ec;
    auto v6 = asio::ip::make_address_v6(std::string(s.substr(1, close - 1)), ec);
    if (ec) return std::nullopt;
    r.ip = v6;
    return r;
  }
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  if (!parse_port(s.substr(colon + 1), &r.port)) return std::nullopt;
  asio::ip::address_v4::bytes_type b{};
  if (!parse_v4(s.substr(0, colon), &b)) return std::nullopt;
  r.ip = asio::ip::address_v4(b);
  return r;
}

size_t format_ip_port(const asio::ip::address& ip, uint16_t port, char* out) {
  size_t n = 0;
  auto put_uint = [&](uint32_t v) {
    char tmp[10];
    size_t k = 0;
    do {
      tmp[k++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (k > 0) out[n++] = tmp[--k];
  };
  if (ip.is_v4()) {
    const auto b = ip.to_v4().to_bytes();
    for (int i = 0; i < 4; ++i) {
      if (i) out[n++] = '.';
      put_uint(b[i]);
    }
  } else {
    std::string s = ip.to_v6().to_string();  // <= 45 chars (INET6_ADDRSTRLEN - 1)
    if (s.size() > 50) s.resize(50);
    out[n++] = '[';
    std::memcpy(out + n, s.data(), s.size());
    n += s.size();
    out[n++] = ']';
  }
  out[n++] = ':';
  put_uint(port);
  return n;
}

std::string format_ip_port(const asio::ip::address& ip, uint16_t port) {
  char buf[64];
  return std::string(buf, format_ip_port(ip, port, buf));
}

}  // namespace dog::node::swim
