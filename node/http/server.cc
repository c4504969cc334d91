#include "node/http/server.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "node/http/connection.h"
#include "node/http/server_state.h"
#include "node/http/ws_session.h"

namespace dog::node {

HttpConfig HttpConfig::testing() {
  HttpConfig c;
  c.max_url_bytes = 1024;
  c.max_header_bytes = 4096;
  c.max_headers = 32;
  c.max_body_bytes = 64 << 10;
  c.header_timeout = std::chrono::milliseconds(300);
  c.idle_timeout = std::chrono::milliseconds(1000);
  c.body_timeout = std::chrono::milliseconds(3000);
  c.max_ws_message_bytes = 64 << 10;
  c.max_ws_send_queue_bytes = 256 << 10;
  c.ws_close_timeout = std::chrono::milliseconds(500);
  c.ws_slow_timeout = std::chrono::milliseconds(2000);
  c.ws_ping_interval = std::chrono::milliseconds(0);  // tests that want keepalive set it
  return c;
}

void HttpServer::State::maybe_drained() {
  if (!shutting_down || !connections.empty() || !sockets.empty() || !on_drained) return;
  drain_timer.cancel();
  auto done = std::move(on_drained);
  on_drained = nullptr;
  asio::post(loop.io(), std::move(done));
}

void HttpServer::State::force_close_all() {
  std::vector<HttpConnection*> conns(connections.begin(), connections.end());
  for (auto* c : conns) c->force_close();
  std::vector<WsSession*> socks(sockets.begin(), sockets.end());
  for (auto* s : socks) s->abort(1006, "server shut down");
}

HttpServer::HttpServer(Loop& loop, HttpConfig config, http::Handler handler)
    : loop_(loop), state_(std::make_shared<State>(loop, config, std::move(handler))) {}

HttpServer::~HttpServer() {
  std::error_code ec;
  state_->acceptor.close(ec);
  state_->accept_timer.cancel();
  state_->on_drained = nullptr;
  state_->force_close_all();
}

void HttpServer::listen(const asio::ip::tcp::endpoint& endpoint) {
  auto& acc = state_->acceptor;
  acc.open(endpoint.protocol());
  acc.set_option(asio::socket_base::reuse_address(true));
  if (state_->config.reuse_port) {
    int one = 1;
    ::setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  }
  acc.bind(endpoint);
  acc.listen(asio::socket_base::max_listen_connections);
  accept();
}

asio::ip::tcp::endpoint HttpServer::local_endpoint() const { return state_->acceptor.local_endpoint(); }

const HttpStats& HttpServer::stats() const { return state_->stats; }

size_t HttpServer::open_count() const { return state_->connections.size() + state_->sockets.size(); }

size_t HttpServer::buffer_bytes() const {
  size_t n = 0;
  for (auto* c : state_->connections) n += c->retained_bytes();
  for (auto* s : state_->sockets) n += s->retained_bytes();
  return n;
}

void HttpServer::accept() {
  std::weak_ptr<State> weak = state_;
  state_->acceptor.async_accept([weak, this](std::error_code ec, asio::ip::tcp::socket socket) {
    auto state = weak.lock();
    if (!state || !state->acceptor.is_open()) return;
    if (ec) {
      // EMFILE and friends are transient: keep accepting rather than going deaf, but back off
      // (10 ms doubling to 1 s): the pending connection keeps the acceptor readable, so an
      // immediate retry would spin the loop at 100 % CPU until a descriptor frees up.
      state->stats.accept_errors++;
      auto& b = state->accept_backoff;
      b = std::clamp(b * 2, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
      state->accept_timer.expires_after(b);
      state->accept_timer.async_wait([weak, this](std::error_code ec) {
        auto state = weak.lock();
        if (ec || !state || !state->acceptor.is_open()) return;  // the server is gone or closing
        accept();
      });
      return;
    }
    state->accept_backoff = std::chrono::milliseconds(0);
    if (state->connections.size() + state->sockets.size() >= state->config.max_connections) {  // open_count()
      state->stats.connections_rejected++;
      std::error_code ignored;
      socket.close(ignored);
    } else {
      std::error_code ignored;
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      auto conn = std::make_shared<HttpConnection>(state, std::move(socket));
      asio::co_spawn(state->loop.io(), conn->run(), asio::detached);
    }
    accept();
  });
}

void HttpServer::shutdown(std::chrono::milliseconds deadline, std::function<void()> done) {
  auto& s = *state_;
  s.shutting_down = true;
  s.on_drained = std::move(done);
  std::error_code ec;
  s.acceptor.close(ec);
  s.accept_timer.cancel();
  std::vector<HttpConnection*> conns(s.connections.begin(), s.connections.end());
  for (auto* c : conns) c->drain();
  std::vector<WsSession*> socks(s.sockets.begin(), s.sockets.end());
  for (auto* w : socks) w->going_away();
  s.drain_timer.expires_after(deadline);
  std::weak_ptr<State> weak = state_;
  s.drain_timer.async_wait([weak](std::error_code ec) {
    if (ec) return;
    auto st = weak.lock();
    if (!st) return;
    st->force_close_all();
    // The deadline is a promise to the caller: report done even if some object still lingers.
    if (st->on_drained) {
      auto done = std::move(st->on_drained);
      st->on_drained = nullptr;
      asio::post(st->loop.io(), std::move(done));
    }
  });
  s.maybe_drained();
}

asio::ip::tcp::endpoint parse_endpoint(std::string_view host_port) {
  std::string_view host, port;
  if (!host_port.empty() && host_port.front() == '[') {
    size_t close = host_port.find(']');
    if (close == std::string_view::npos || close + 1 >= host_port.size() || host_port[close + 1] != ':')
      throw std::invalid_argument("bad address '" + std::string(host_port) + "': expected [IPv6]:PORT");
    host = host_port.substr(1, close - 1);
    port = host_port.substr(close + 2);
  } else {
    size_t colon = host_port.rfind(':');
    if (colon == std::string_view::npos)
      throw std::invalid_argument("bad address '" + std::string(host_port) + "': expected HOST:PORT");
    host = host_port.substr(0, colon);
    port = host_port.substr(colon + 1);
  }
  unsigned long p = 0;
  if (port.empty() || port.size() > 5) throw std::invalid_argument("bad port in '" + std::string(host_port) + "'");
  for (char c : port) {
    if (c < '0' || c > '9') throw std::invalid_argument("bad port in '" + std::string(host_port) + "'");
    p = p * 10 + (c - '0');
  }
  if (p > 65535) throw std::invalid_argument("port out of range in '" + std::string(host_port) + "'");
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty()) host = "0.0.0.0";
  std::error_code ec;
  auto addr = asio::ip::make_address(std::string(host), ec);
  if (ec) throw std::invalid_argument("bad host '" + std::string(host) + "' (an IP address is expected)");
  return {addr, static_cast<unsigned short>(p)};
}

}  // namespace dog::node
