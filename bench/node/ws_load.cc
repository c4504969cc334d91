// dog-ws-load: a bounded WebSocket echo load generator. Opens --conns connections, keeps
// --inflight messages of --size bytes outstanding on each, and counts echoes for --seconds.
// Writes are batched (all messages owed on a connection go out in one write), so the client
// costs far less per message than the server it measures. Prints one JSON line.
#include <CLI/CLI.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "node/http/ws_codec.h"

namespace ws = dog::http::ws;
using tcp = asio::ip::tcp;

namespace {

struct Stats {
  uint64_t received = 0;
  bool stop = false;
};

class Conn : public ws::FrameSink, public std::enable_shared_from_this<Conn> {
 public:
  Conn(asio::io_context& io, Stats& stats, std::string frame, int inflight)
      : socket_(io), stats_(stats), frame_(std::move(frame)), inflight_(inflight),
        decoder_(ws::Role::kClient, 1 << 20) {}

  void start(const tcp::endpoint& ep, const std::string& path) {
    socket_.connect(ep);
    socket_.set_option(tcp::no_delay(true));
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    asio::write(socket_, asio::buffer(req));
    asio::streambuf head;
    size_t n = asio::read_until(socket_, head, "\r\n\r\n");
    std::string all(asio::buffers_begin(head.data()), asio::buffers_end(head.data()));
    if (all.rfind("HTTP/1.1 101", 0) != 0) throw std::runtime_error("upgrade refused: " + all.substr(0, 40));
    std::string rest = all.substr(n);
    if (!rest.empty()) decoder_.feed(rest, *this);
    send(inflight_);
    read();
  }
  void on_message(std::string_view, bool) override {
    stats_.received++;
    owed_++;
  }
  void on_ping(std::string_view) override {}
  void on_pong(std::string_view) override {}
  void on_close(uint16_t, std::string_view) override { closed_ = true; }
  void on_protocol_error(uint16_t, std::string_view) override { closed_ = true; }

 private:
  void send(int n) {
    out_.clear();
    for (int i = 0; i < n; ++i) out_.append(frame_);
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this()](std::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) self->closed_ = true;
      else self->pump();
    });
    writing_ = true;
  }
  void pump() {
    if (!writing_ && owed_ > 0 && !stats_.stop && !closed_) {
      int n = owed_;
      owed_ = 0;
      send(n);
    }
  }
  void read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](std::error_code ec, size_t n) {
      if (ec || self->stats_.stop) return;
      self->decoder_.feed(std::string_view(self->buf_, n), *self);
      self->pump();
      if (!self->closed_) self->read();
    });
  }

  tcp::socket socket_;
  Stats& stats_;
  std::string frame_;
  int inflight_;
  ws::Decoder decoder_;
  std::string out_;
  int owed_ = 0;
  bool writing_ = false;
  bool closed_ = false;
  char buf_[64 << 10];
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bounded WebSocket echo load"};
  std::string host = "127.0.0.1", path = "/ws";
  int port = 8090, conns = 50, inflight = 20, size = 64;
  double seconds = 5, warmup = 1;
  app.add_option("--host", host);
  app.add_option("--port", port)->check(CLI::Range(1, 65535));
  app.add_option("--path", path);
  app.add_option("--conns", conns)->check(CLI::Range(1, 5000));
  app.add_option("--inflight", inflight)->check(CLI::Range(1, 10000));
  app.add_option("--size", size)->check(CLI::Range(1, 1 << 20));
  app.add_option("--seconds", seconds)->check(CLI::Range(0.1, 600.0));
  app.add_option("--warmup", warmup)->check(CLI::Range(0.0, 60.0));
  CLI11_PARSE(app, argc, argv);

  asio::io_context io(1);
  Stats stats;
  std::string frame;
  ws::encode_frame(frame, ws::Opcode::kText, std::string(size, 'm'), true, ws::Role::kClient, 0x12345678);
  tcp::endpoint ep(asio::ip::make_address(host), static_cast<unsigned short>(port));
  std::vector<std::shared_ptr<Conn>> all;
  for (int i = 0; i < conns; ++i) {
    all.push_back(std::make_shared<Conn>(io, stats, frame, inflight));
    all.back()->start(ep, path);
  }
  using clock = std::chrono::steady_clock;
  uint64_t base = 0;
  clock::time_point t0;
  asio::steady_timer warm(io, std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(warmup)));
  asio::steady_timer end(io);
  warm.async_wait([&](std::error_code) {
    base = stats.received;
    t0 = clock::now();
    end.expires_after(std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds)));
    end.async_wait([&](std::error_code) {
      stats.stop = true;
      io.stop();
    });
  });
  io.run();
  double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
  uint64_t counted = stats.received - base;
  double rate = counted / elapsed;
  std::fprintf(stderr, "ws-load: %d conns x %d in flight, %d B: %.0f msgs/s\n", conns, inflight, size, rate);
  nlohmann::json j = {{"conns", conns}, {"inflight", inflight}, {"size", size}, {"seconds", elapsed},
                      {"messages", counted}, {"msgs_per_s", rate}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
