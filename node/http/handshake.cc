#include "node/http/handshake.h"

#include <openssl/sha.h>
#include <sodium.h>

namespace dog::http::ws {

bool header_has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

HandshakeCheck check_upgrade(const Request& req) {
  if (req.method != "GET") return {400, "WebSocket upgrade requires GET"};
  if (req.version_minor < 1) return {400, "WebSocket upgrade requires HTTP/1.1"};
  if (!req.headers.get("host")) return {400, "missing Host header"};
  auto upgrade = req.headers.get("upgrade");
  if (!upgrade || !header_has_token(*upgrade, "websocket")) return {400, "Upgrade must be websocket"};
  auto connection = req.headers.get("connection");
  if (!connection || !header_has_token(*connection, "upgrade"))
    return {400, "Connection header must include Upgrade"};
  auto version = req.headers.get("sec-websocket-version");
  if (!version || *version != "13") return {426, "Sec-WebSocket-Version must be 13"};
  auto key = req.headers.get("sec-websocket-key");
  if (!key) return {400, "missing Sec-WebSocket-Key"};
  unsigned char raw[32];
  size_t len = 0;
  if (key->size() != 24 ||
      sodium_base642bin(raw, sizeof raw, key->data(), key->size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len != 16)
    return {400, "Sec-WebSocket-Key must be base64 of 16 bytes"};
  return {};
}

std::string accept_key(std::string_view client_key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in;
  in.reserve(client_key.size() + kGuid.size());
  in.append(client_key).append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  char out[sodium_base64_ENCODED_LEN(SHA_DIGEST_LENGTH, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(out, sizeof out, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
  return out;
}

}  // namespace dog::http::ws
