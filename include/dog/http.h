// dog/http.h — the HTTP request and response types user code sees.
//
// A Request is owned by the connection that parsed it and is valid until the handler's
// coroutine completes. A Response is a value the handler returns: a status, headers and either
// a body held in memory, a streamed body (sent with chunked encoding), or a WebSocket upgrade.
#pragma once

#include <asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dog::http {

class WebSocket;

struct Header {
  std::string name;
  std::string value;
};

// Case-insensitive ASCII comparison, as header names require.
bool iequals(std::string_view a, std::string_view b);

class Headers {
 public:
  // First value of `name` (case-insensitive), if present.
  std::optional<std::string_view> get(std::string_view name) const;
  void add(std::string name, std::string value) { list_.push_back({std::move(name), std::move(value)}); }
  // Removes every field named `name` (case-insensitive), then adds this one.
  void set(std::string name, std::string value);
  void clear() { list_.clear(); }
  auto begin() const { return list_.begin(); }
  auto end() const { return list_.end(); }
  size_t size() const { return list_.size(); }

 private:
  std::vector<Header> list_;
};

struct Request {
  std::string method;   // "GET", "POST", ...
  std::string target;   // request-target as sent: path and query
  int version_minor = 1;
  Headers headers;
  std::string body;     // the whole body, de-chunked; bounded by the server's body limit
  uint64_t id = 0;      // server-assigned, unique per process, for logs
  // Set by the runtime on a request that another node forwarded (its client socket, if it
  // upgrades, lives on that node). Never set from anything a client sends.
  bool relayed = false;

  std::string_view path() const;
  std::string_view query() const;
  // Value of query parameter `key` (not percent-decoded), if present.
  std::optional<std::string_view> query_param(std::string_view key) const;
  // True if the Upgrade header lists the token "websocket", in any case (RFC 9110 §7.8).
  bool is_websocket_upgrade() const;
};

// Events of one accepted WebSocket, delivered on the loop that owns it, one at a time. The
// server holds a strong reference to the handler for the whole of each call, so a hook may
// close or overflow its own socket (which lets the session drop the handler) and keep running.
class WebSocketHandler {
 public:
  virtual ~WebSocketHandler() = default;
  virtual void on_open(const std::shared_ptr<WebSocket>& ws) {}
  virtual void on_message(const std::shared_ptr<WebSocket>& ws, std::string_view data, bool text) = 0;
  // The socket's send queue had backed up (more than kBacklogBytes queued when a write began)
  // and is now fully written, however many writes that took, or the socket is being closed with
  // 1013 for being too slow and its queue was dropped (then this may run inside the send() that
  // overflowed). With WebSocket::buffered_bytes() and pause_reading() this lets a fan-out
  // slow its publishers while a receiver is behind, and release them here.
  virtual void on_drain(const std::shared_ptr<WebSocket>& ws) {}
  // Called exactly once. `code` is 1006 when the connection ended without a close frame
  // (including when the server dropped a peer that stopped reading).
  virtual void on_close(const std::shared_ptr<WebSocket>& ws, uint16_t code, std::string_view reason) {}
};

// Pulls the next chunk of a streamed body; std::nullopt ends the body.
using BodySource = std::function<asio::awaitable<std::optional<std::string>>()>;

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  BodySource stream;                              // if set, `body` is ignored
  std::shared_ptr<WebSocketHandler> websocket;    // if set, accept the upgrade

  static Response text(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8");
  static Response json(int status, std::string body);
  static Response html(std::string body);
  // 405 with the Allow header RFC 9110 §15.5.6 requires, e.g. method_not_allowed("GET, HEAD").
  static Response method_not_allowed(std::string allow);
  static Response accept_websocket(std::shared_ptr<WebSocketHandler> handler);
};

// The application's entry point: one call per request, on the connection's loop.
using Handler = std::function<asio::awaitable<Response>(Request&)>;

// Reason phrase for a status code ("OK", "Not Found", ...).
std::string_view reason_phrase(int status);

}  // namespace dog::http
