// dog::admin::http_call — one blocking HTTP/1.1 request to an admin endpoint, for dogctl and
// tests. Asio for the socket, llhttp (the front door's parser) for the response; nothing
// hand-parsed.
//
// Contract: connects to HOST:PORT (an IPv4/IPv6 literal or a name), sends `method target` (and
// `body`, as text/plain) with `Connection: close`, reads the response until the server closes, and returns it. The whole
// exchange is bounded by `timeout`; a response over `max_bytes` is refused. Throws
// AdminCallError (its kind() says why) on any failure; a non-2xx status is NOT an error here.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace dog::admin {

class AdminCallError : public std::runtime_error {
 public:
  enum class Kind { kBadAddress, kConnect, kTimeout, kIo, kBadResponse, kTooLarge };
  AdminCallError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct HttpResult {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // First value of header `name` (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

HttpResult http_call(const std::string& host_port, const std::string& method, const std::string& target,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10), size_t max_bytes = 64 << 20,
                     const std::string& body = "");

// Percent-encodes a query value (RFC 3986 unreserved characters are kept).
std::string query_escape(std::string_view v);

}  // namespace dog::admin
