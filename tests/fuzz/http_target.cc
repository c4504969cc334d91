// Target: the HTTP/1.1 front door (node/http/connection.cc, and ws_session.cc after an upgrade):
// the fuzzer's bytes are a client's whole connection, written into one end of a socketpair
// whose other end is served by a real HttpConnection on a real Loop, with the handler below.
//
// Input: [split seed][bytes...]. Seed 0 writes everything at once; otherwise the bytes go in
// pieces (1-64 bytes, from the seed), and the server runs until idle between pieces, so
// requests are parsed across reads. Then the client half-closes and the target runs the loop
// until the server has closed the connection (or its WebSocket), reading everything it wrote.
// Checked: the connection ends after the client's EOF, and every byte the server wrote before
// a WebSocket starts is a response: it begins with "HTTP/1.1 " and parses as status lines and
// lengths (chunked bodies included).
#include <fcntl.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <string>

#include "dog/websocket.h"
#include "node/http/connection.h"
#include "node/http/server_state.h"
#include "node/loop.h"
#include "tests/fuzz/targets.h"

namespace dog::fuzz {
namespace {

using namespace dog::node;

// WebSocket hooks: echo; "close" closes; "big" overflows the send queue (the drop path).
struct Echo final : http::WebSocketHandler {
  void on_message(const std::shared_ptr<http::WebSocket>& ws, std::string_view data, bool text) override {
    if (data == "close") ws->close(1000, "bye");
    else if (data == "big") ws->send(std::string(300 << 10, 'x'), false);
    else ws->send(data, text);
  }
};

asio::awaitable<http::Response> handle(http::Request& req) {
  auto path = req.path();
  if (path == "/ws") co_return http::Response::accept_websocket(std::make_shared<Echo>());
  if (path == "/throw") throw std::runtime_error("handler bug");
  if (path == "/big") co_return http::Response::text(200, std::string(200 << 10, 'b'));
  if (path == "/split") {
    auto r = http::Response::text(200, "x");
    r.headers.add("X-Bad", "a\r\nSet-Cookie: evil=1");
    co_return r;
  }
  if (path == "/stream") {
    http::Response r;
    auto n = std::make_shared<int>(0);
    r.stream = [n]() -> asio::awaitable<std::optional<std::string>> {
      if (++*n > 3) co_return std::nullopt;
      co_return std::string(size_t(*n) * 10, 's');
    };
    co_return r;
  }
  co_return http::Response::text(200, req.method + " " + req.target + " " + std::to_string(req.body.size()));
}

struct Server {
  Loop loop;
  std::shared_ptr<HttpServer::State> state;
  Server() {
    auto config = HttpConfig::testing();
    state = std::make_shared<HttpServer::State>(loop, config, handle);
  }
  bool idle() const { return state->connections.empty() && state->sockets.empty(); }
};

// Walks the responses in `out` up to a WebSocket's 101 (after which frames follow).
void check_responses(std::string_view out) {
  while (!out.empty()) {
    fuzz_check(out.substr(0, 9) == "HTTP/1.1 ", "a response starts with HTTP/1.1");
    size_t end = out.find("\r\n\r\n");
    fuzz_check(end != std::string_view::npos, "a response head ends with CRLF CRLF");
    std::string_view head = out.substr(0, end + 2);
    out.remove_prefix(end + 4);
    int status = std::atoi(std::string(head.substr(9, 3)).c_str());
    fuzz_check(status >= 100 && status <= 599, "a three-digit status");
    if (status == 101) return;
    if (status == 100 || status == 204 || status == 304) continue;
    size_t cl = head.find("\r\nContent-Length: ");
    if (cl != std::string_view::npos) {
      size_t n = std::strtoull(std::string(head.substr(cl + 18, 20)).c_str(), nullptr, 10);
      // A HEAD answer announces a length it does not send; then the next response follows.
      if (out.size() >= n && (n == 0 || out.substr(n, 9) == "HTTP/1.1 " || out.size() == n)) out.remove_prefix(n);
      continue;
    }
    // A HEAD answer announces chunked and sends no body: the next response follows at once.
    if (head.find("\r\nTransfer-Encoding: chunked") != std::string_view::npos && out.substr(0, 9) != "HTTP/1.1 ") {
      for (;;) {
        size_t nl = out.find("\r\n");
        if (nl == std::string_view::npos) return;  // cut by a close: allowed after an error
        size_t n = std::strtoull(std::string(out.substr(0, nl)).c_str(), nullptr, 16);
        out.remove_prefix(std::min(out.size(), nl + 2 + n + 2));
        if (n == 0) break;
      }
      continue;
    }
    return;  // a body that runs to the close (HTTP/1.0 streaming)
  }
}

}  // namespace

int http_connection(const uint8_t* data, size_t size) {
  static Server* server = new Server();  // one loop for the whole run, as in a node
  Input in(data, size);
  uint8_t seed = in.u8();
  size_t n = 0;
  const uint8_t* bytes = in.rest(&n);

  int fds[2];
  fuzz_check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0, "socketpair");
  asio::ip::tcp::socket sock(server->loop.io());
  sock.assign(asio::ip::tcp::v4(), fds[0]);
  // As the accept handler does it: from inside the loop, so co_spawn starts run() at once and
  // run() takes its own reference before `conn` goes away.
  asio::post(server->loop.io(), [&sock] {
    auto conn = std::make_shared<HttpConnection>(server->state, std::move(sock));
    asio::co_spawn(server->loop.io(), conn->run(), asio::detached);
  });

  // The client end: everything the server writes is collected as it arrives.
  std::string out;
  bool eof = false;
  asio::posix::stream_descriptor client(server->loop.io(), fds[1]);
  std::function<void()> arm = [&] {
    client.async_wait(asio::posix::descriptor_base::wait_read, [&](std::error_code ec) {
      if (ec) return;
      char buf[65536];
      for (;;) {
        ssize_t k = ::read(fds[1], buf, sizeof buf);
        if (k > 0) out.append(buf, size_t(k));
        if (k == 0) eof = true;
        if (k <= 0) break;
      }
      if (!eof) arm();
    });
  };
  arm();
  auto run_until_idle = [&] {
    auto& io = server->loop.io();
    for (int i = 0; i < 100000; ++i) {
      io.restart();
      server->loop.poll();
      if (io.poll() == 0) {
        server->loop.poll();
        if (io.poll() == 0) return;
      }
    }
  };

  size_t at = 0;
  while (at < n) {
    size_t len = n - at;
    if (seed != 0) {
      seed = static_cast<uint8_t>(seed * 37 + 11);
      len = std::min<size_t>(len, 1 + seed % 64);
    }
    ssize_t k = ::send(fds[1], bytes + at, len, MSG_NOSIGNAL);
    if (k <= 0) break;  // the server closed (it rejected the request), or its buffer is full
    at += size_t(k);
    run_until_idle();
    if (server->idle()) break;
  }
  ::shutdown(fds[1], SHUT_WR);

  // After the client's EOF the server must finish on its own (at most its 1 s linger timer);
  // the bound is only a generous backstop, libFuzzer's -timeout catches a hang first.
  auto& io = server->loop.io();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!(server->idle() && eof) && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    server->loop.poll();
    io.run_one_for(std::chrono::milliseconds(50));
  }
  fuzz_check(server->idle(), "the connection ends after the client's EOF");
  client.cancel();
  client.close();
  run_until_idle();
  check_responses(out);
  return 0;
}

}  // namespace dog::fuzz
