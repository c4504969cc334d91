// HttpConnection, the writing side: response heads, errors, the 101 hand-over, flushing.
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cstdio>
#include <ctime>

#include "node/http/connection.h"
#include "node/http/handshake.h"
#include "node/http/ws_session.h"

namespace dog::node {

bool valid_response_headers(const http::Response& resp) {
  for (const auto& h : resp.headers)
    if (!valid_field_name(h.name) || !valid_field_value(h.value)) return false;
  return true;
}

void HttpConnection::write_head(const http::Response& resp, bool chunked, size_t length) {
  char line[64];
  auto reason = http::reason_phrase(resp.status);
  int k = std::snprintf(line, sizeof line, "HTTP/1.1 %d ", resp.status);
  out_.append(line, k).append(reason).append("\r\n");
  if (resp.status >= 200 && !resp.headers.get("date"))
    out_.append("Date: ").append(http_date(std::time(nullptr))).append("\r\n");
  // RFC 9110 §15.5.22: a 426 names the protocol to switch to.
  if (resp.status == 426 && !resp.headers.get("upgrade")) out_.append("Upgrade: websocket\r\n");
  for (const auto& h : resp.headers) {
    if (http::iequals(h.name, "content-length") || http::iequals(h.name, "transfer-encoding") || http::iequals(h.name, "connection"))
      continue;  // framing headers are the server's to write
    out_.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  const bool bodiless = resp.status < 200 || resp.status == 204 || resp.status == 304;
  if (chunked) {
    out_.append("Transfer-Encoding: chunked\r\n");
  } else if (!bodiless && !resp.stream) {
    k = std::snprintf(line, sizeof line, "Content-Length: %zu\r\n", length);
    out_.append(line, k);
  }
  write_connection_header(resp.status);
  out_.append("\r\n");  // HEAD gets the same head as GET; the caller omits the body
}

// A sender of Upgrade also lists it in Connection (RFC 9110 §7.8).
void HttpConnection::write_connection_header(int status) {
  const bool upgrade = status == 426;
  if (!keep_alive_) out_.append(upgrade ? "Connection: upgrade, close\r\n" : "Connection: close\r\n");
  else if (upgrade) out_.append(req_.version_minor == 0 ? "Connection: upgrade, keep-alive\r\n" : "Connection: upgrade\r\n");
  else if (req_.version_minor == 0) out_.append("Connection: keep-alive\r\n");
}

void HttpConnection::write_error(int status, std::string_view why) {
  keep_alive_ = false;
  auto resp = http::Response::text(status, std::string(why) + "\n");
  if (status == 426) resp.headers.add("Sec-WebSocket-Version", "13");
  write_head(resp, false, resp.body.size());
  out_.append(resp.body);
}

asio::awaitable<bool> HttpConnection::upgrade(http::Response& resp) {
  auto key = req_.headers.get("sec-websocket-key");
  out_.append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
  out_.append("Sec-WebSocket-Accept: ").append(http::ws::accept_key(*key)).append("\r\n");
  for (const auto& h : resp.headers) out_.append(h.name).append(": ").append(h.value).append("\r\n");
  out_.append("\r\n");
  if (!co_await flush()) co_return false;
  closed_ = true;  // the socket now belongs to the WebSocket session
  timer_.cancel();
  // The session counts against max_connections from here: this connection no longer does.
  server_->connections.erase(this);
  auto session = std::make_shared<WsSession>(server_, std::move(socket_), std::move(resp.websocket), req_.id);
  session->start(std::string_view(in_ + in_off_, in_len_ - in_off_));  // in pending_: see run()
  // The server began draining while the handler ran: shutdown() told only the sockets that
  // existed then, so this one hears it here.
  if (server_->shutting_down) session->going_away();
  co_return false;
}

asio::awaitable<bool> HttpConnection::flush() {
  if (out_.empty() || closed_) co_return !closed_;
  Phase was = phase_;
  phase_ = Phase::kWriting;
  set_deadline(Clock::now() + server_->config.idle_timeout);  // a client must keep reading
  std::error_code ec;
  co_await asio::async_write(socket_, asio::buffer(out_), asio::redirect_error(asio::use_awaitable, ec));
  release_if_large(out_);
  phase_ = was;
  if (ec || closed_) {
    close_socket();
    co_return false;
  }
  co_return true;
}

}  // namespace dog::node
