// WebSocket opening handshake checks (RFC 6455 §4.2.1) and the accept key (§4.2.2).
#pragma once

#include <string>
#include <string_view>

#include "dog/http.h"

namespace dog::http::ws {

struct HandshakeCheck {
  int status = 0;        // 0 = valid; otherwise 400 or 426 (wrong version) to answer with
  std::string reason;    // what was wrong, for the response body
};

// Validates an upgrade request: GET, HTTP/1.1+, Host, Upgrade: websocket, Connection: upgrade,
// Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key that is base64 of 16 bytes.
HandshakeCheck check_upgrade(const Request& req);

// base64(SHA-1(key + GUID)), the Sec-WebSocket-Accept value.
std::string accept_key(std::string_view client_key);

// True if the comma-separated header value contains `token` (case-insensitive).
bool header_has_token(std::string_view value, std::string_view token);

}  // namespace dog::http::ws
