// Internal: state shared by the server, its connections and its WebSocket sessions. Held by
// shared_ptr so a connection can outlive the HttpServer object during teardown.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <unordered_set>
#include <vector>

#include "node/http/server.h"

namespace dog::node {

class HttpConnection;
class WsSession;

struct HttpServer::State {
  State(Loop& l, HttpConfig c, http::Handler h)
      : loop(l),
        config(c),
        handler(std::move(h)),
        acceptor(l.io()),
        drain_timer(l.io()),
        accept_timer(l.io()),
        keepalive_timer(l.io()) {}

  Loop& loop;
  HttpConfig config;
  http::Handler handler;
  asio::ip::tcp::acceptor acceptor;
  HttpStats stats;
  std::unordered_set<HttpConnection*> connections;
  std::unordered_set<WsSession*> sockets;
  bool shutting_down = false;
  asio::steady_timer drain_timer;
  asio::steady_timer accept_timer;                 // back-off after a failed accept()
  std::chrono::milliseconds accept_backoff{0};
  std::function<void()> on_drained;
  uint64_t next_id = 1;

  // The loop's one read buffer for WebSockets (a server belongs to one loop): a socket reads
  // into it only inside a readiness handler and the decoder copies what it keeps, so idle
  // sockets hold none of their own. 64 KiB, made on first use.
  std::vector<char>& read_buffer() {
    if (read_buf.empty()) read_buf.resize(64 << 10);
    return read_buf;
  }
  std::vector<char> read_buf;

  // WebSockets with frames queued during this turn. One posted handler flushes them all (each
  // still in one sendmsg), instead of one posted handler per socket: a broadcast to 10,000
  // sockets costs one handler, not 10,000. Weak: an open session is kept alive by its reads.
  std::vector<std::weak_ptr<WsSession>> flush_list;
  bool flush_posted = false;

  // The keepalive sweep over `sockets` (WsSession::arm_keepalive_sweep): one timer per server.
  asio::steady_timer keepalive_timer;
  bool keepalive_armed = false;

  // Called whenever a connection or socket goes away; completes a pending shutdown.
  void maybe_drained();
  void force_close_all();
};

}  // namespace dog::node
