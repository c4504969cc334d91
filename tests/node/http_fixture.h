// Test fixture: an HttpServer on its own Loop (the test's thread) and blocking raw-socket
// clients on a second thread, so tests speak bytes exactly as a remote peer would.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <functional>
#include <future>
#include <string>
#include <thread>

#include "node/http/server.h"
#include "node/http/ws_codec.h"
#include "node/loop.h"

namespace dog::test {

// A blocking client socket with a receive timeout, so a test can never hang.
class RawClient {
 public:
  explicit RawClient(uint16_t port, int timeout_ms = 5000) : socket_(io_) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  // False if the server already closed (a peer it rejected may see EPIPE mid-write).
  bool send(std::string_view bytes) {
    std::error_code ec;
    asio::write(socket_, asio::buffer(bytes), ec);
    return !ec;
  }
  // Reads whatever arrives next (empty on EOF, timeout or error; `ec` says which).
  std::string read_some(std::error_code& ec) {
    char buf[65536];
    size_t n = socket_.read_some(asio::buffer(buf), ec);
    return ec ? std::string() : std::string(buf, n);
  }
  std::string read_some() {
    std::error_code ec;
    return read_some(ec);
  }
  // Reads until `pattern` has been seen `count` times, EOF or timeout; returns all bytes read.
  std::string read_until(std::string_view pattern, int count = 1) {
    std::string got;
    for (;;) {
      int seen = 0;
      for (size_t at = got.find(pattern); at != std::string::npos; at = got.find(pattern, at + 1)) ++seen;
      if (seen >= count) return got;
      std::string more = read_some();
      if (more.empty()) return got;
      got += more;
    }
  }
  // Reads until the server closes the connection (or timeout); true if it closed.
  bool read_to_close(std::string* out = nullptr) {
    for (int i = 0; i < 100000; ++i) {
      char buf[65536];
      std::error_code ec;
      size_t n = socket_.read_some(asio::buffer(buf), ec);
      if (ec == asio::error::eof || ec == asio::error::connection_reset) return true;
      if (ec) return false;  // timeout
      if (out) out->append(buf, n);
    }
    return false;
  }
  asio::ip::tcp::socket& socket() { return socket_; }

 private:
  asio::io_context io_;
  asio::ip::tcp::socket socket_;
};

// One server frame as the test client decoded it, or the end of the stream: then `end` says
// whether the server closed the connection or the read timed out (op is kContinuation).
struct Frame {
  enum class End { kNone, kEof, kTimeout };
  http::ws::Opcode op;
  std::string payload;
  uint16_t close_code = 0;
  End end = End::kNone;
  bool eof() const { return end == End::kEof; }
};

// A WebSocket client over RawClient, using the same codec in client role.
class WsClient : public http::ws::FrameSink {
 public:
  explicit WsClient(uint16_t port, std::string path = "/ws") : raw_(port), decoder_(http::ws::Role::kClient, 64 << 20) {
    raw_.send("GET " + path + " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    std::string head = raw_.read_until("\r\n\r\n");
    size_t end = head.find("\r\n\r\n");
    response = head.substr(0, end == std::string::npos ? head.size() : end + 4);
    if (end != std::string::npos) pending_ = head.substr(end + 4);
  }
  bool upgraded() const { return response.rfind("HTTP/1.1 101", 0) == 0; }
  void send(http::ws::Opcode op, std::string_view payload, bool fin = true) {
    std::string f;
    http::ws::encode_frame(f, op, payload, fin, http::ws::Role::kClient, 0x37fa213d);
    raw_.send(f);
  }
  void send_raw(std::string_view bytes) { raw_.send(bytes); }
  // Next frame from the server; at the end of the stream `end` is kEof (the server closed) or
  // kTimeout (nothing arrived within the receive timeout).
  Frame next() {
    for (int i = 0; i < 100000 && frames_.empty(); ++i) {
      if (!pending_.empty()) {
        std::string p;
        p.swap(pending_);
        decoder_.feed(p, *this);
        continue;
      }
      std::error_code ec;
      std::string more = raw_.read_some(ec);
      if (ec) {
        bool closed = ec == asio::error::eof || ec == asio::error::connection_reset;
        return {http::ws::Opcode::kContinuation, "", 0, closed ? Frame::End::kEof : Frame::End::kTimeout};
      }
      decoder_.feed(more, *this);
    }
    if (frames_.empty()) return {http::ws::Opcode::kContinuation, "", 0, Frame::End::kTimeout};
    Frame f = frames_.front();
    frames_.erase(frames_.begin());
    return f;
  }
  bool closed_by_server() { return raw_.read_to_close(); }
  RawClient& raw() { return raw_; }
  std::string response;

  void on_message(std::string_view p, bool text) override {
    frames_.push_back({text ? http::ws::Opcode::kText : http::ws::Opcode::kBinary, std::string(p)});
  }
  void on_ping(std::string_view p) override { frames_.push_back({http::ws::Opcode::kPing, std::string(p)}); }
  void on_pong(std::string_view p) override { frames_.push_back({http::ws::Opcode::kPong, std::string(p)}); }
  void on_close(uint16_t code, std::string_view reason) override {
    frames_.push_back({http::ws::Opcode::kClose, std::string(reason), code});
  }
  void on_protocol_error(uint16_t code, std::string_view why) override {
    frames_.push_back({http::ws::Opcode::kClose, "client decode error: " + std::string(why), code});
  }

 private:
  RawClient raw_;
  http::ws::Decoder decoder_;
  std::string pending_;
  std::vector<Frame> frames_;
};

// From a client thread: runs `pred` on the loop's thread until it holds (true) or 10 s pass
// (false). The condition wait tests use instead of sleeping.
inline bool eventually(node::Loop& loop, const std::function<bool()>& pred) {
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < give_up) {
    auto p = std::make_shared<std::promise<bool>>();
    auto f = p->get_future();
    loop.post([p, pred] { p->set_value(pred()); });  // copies: the loop may run it after we give up
    if (f.wait_until(give_up) == std::future_status::ready && f.get()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// Runs `client(port)` on another thread while the server runs on this one; stops the loop when
// the client returns (or after 30 s, so a broken test fails instead of hanging).
inline void with_server(node::Loop& loop, node::HttpServer& server, const std::function<void(uint16_t)>& client) {
  server.listen({asio::ip::make_address("127.0.0.1"), 0});
  uint16_t port = server.local_endpoint().port();
  std::exception_ptr failure;
  std::thread t([&] {
    try {
      client(port);
    } catch (...) {
      failure = std::current_exception();
    }
    loop.post([&loop] { loop.stop(); });
  });
  asio::steady_timer guard(loop.io(), std::chrono::seconds(30));
  guard.async_wait([&](std::error_code ec) { if (!ec) loop.stop(); });
  loop.run();
  t.join();
  guard.cancel();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace dog::test
