// Port sharing (issue 11): AsioTransport hands accepted TCP connections whose first byte is not
// 0x00 (not a SWIM frame) to a foreign handler, untouched, on real loopback sockets.
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "node/loop.h"
#include "node/swim/swim_host.h"
#include "node/swim/swim_io.h"
#include "node/swim/transport.h"
#include "loop_helpers.h"

using namespace dog::node::swim;
using namespace std::chrono_literals;
using swim_test::run_until;

namespace {
struct Collect : AsioTransport::Receiver {
  std::vector<std::string> streams;
  void on_datagram(std::string_view, std::span<const uint8_t>) override {}
  void on_stream(std::string_view, std::span<const uint8_t> b) override {
    streams.emplace_back(b.begin(), b.end());
  }
};

asio::ip::tcp::socket dial(dog::node::Loop& loop, uint16_t port, const std::string& bytes) {
  asio::ip::tcp::socket s(loop.io());
  s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  if (!bytes.empty()) asio::write(s, asio::buffer(bytes));
  return s;
}
}  // namespace

TEST_CASE("swim_real: port sharing hands non-SWIM connections over unread", "[swim_real]") {
  dog::node::Loop loop;
  SwimIo io(loop.io());
  TransportLimits lim;
  lim.max_in_conns = 3;
  lim.in_idle_timeout = 400ms;
  AsioTransport t(io, "127.0.0.1:0", lim);
  Collect r;
  t.set_receiver(&r);
  std::vector<asio::ip::tcp::socket> adopted;
  t.set_foreign_stream_handler([&](asio::ip::tcp::socket s) { adopted.push_back(std::move(s)); });
  t.start();

  // An RPC-style dialer: its socket arrives with every byte still unread, off the books.
  const std::string hello = "DOGRPC\x01hello";
  auto rpc = dial(loop, t.port(), hello);
  REQUIRE(run_until(loop, [&] { return adopted.size() == 1; }, 5000ms));
  CHECK(t.in_conns() == 0);
  CHECK(t.stats().tcp_foreign_adopted == 1);
  std::string got(hello.size(), '\0');
  asio::read(adopted[0], asio::buffer(got.data(), got.size()));
  CHECK(got == hello);
  asio::write(adopted[0], asio::buffer(std::string("pong")));  // and it is a live duplex socket
  std::string back(4, '\0');
  asio::read(rpc, asio::buffer(back.data(), back.size()));
  CHECK(back == "pong");

  // A SWIM frame on the same port still reaches the receiver.
  auto swim = dial(loop, t.port(), std::string("\0\0\0\2ok", 6));
  REQUIRE(run_until(loop, [&] { return r.streams.size() == 1; }, 5000ms));
  CHECK(r.streams[0] == "ok");
  CHECK(adopted.size() == 1);

  // A connection that never sends is closed by the idle deadline, not adopted; over the inbound
  // cap a connection is still closed at once, whatever it would have sent.
  const uint64_t timeouts = t.stats().tcp_timeouts;
  auto quiet1 = dial(loop, t.port(), "");
  auto quiet2 = dial(loop, t.port(), "");
  REQUIRE(run_until(loop, [&] { return t.stats().tcp_accepted == 4; }, 5000ms));
  auto over = dial(loop, t.port(), "DOGRPC");
  REQUIRE(run_until(loop, [&] { return t.stats().tcp_rejected == 1; }, 5000ms));
  REQUIRE(run_until(loop, [&] { return t.stats().tcp_timeouts >= timeouts + 2; }, 5000ms));
  CHECK(adopted.size() == 1);
  CHECK(t.stats().tcp_foreign_adopted == 1);
  // The peer of the rejected connection sees it closed.
  char b;
  std::error_code ec;
  over.read_some(asio::buffer(&b, 1), ec);
  CHECK(ec);

  // Without a handler, a non-zero first byte is a bad SWIM length as before.
  t.set_foreign_stream_handler(nullptr);
  const uint64_t bad = t.stats().tcp_bad_frames;
  auto stray = dial(loop, t.port(), "DOGRPC");
  REQUIRE(run_until(loop, [&] { return t.stats().tcp_bad_frames == bad + 1; }, 5000ms));
  CHECK(adopted.size() == 1);
}

TEST_CASE("swim_real: SwimHost shares its port with a foreign stream handler", "[swim_real]") {
  dog::node::Loop loop;
  SwimIo io(loop.io());
  auto opts = [](const char* name) {
    SwimHostOptions o;
    o.config = dog::membership::Config::local();
    o.name = std::string(name);
    o.key.fill(7);
    o.seed = name[0];
    return o;
  };
  SwimHost a(io, opts("a"), nullptr), b(io, opts("b"), nullptr);
  int adopted = 0;
  a.transport().set_foreign_stream_handler([&](asio::ip::tcp::socket) { ++adopted; });
  a.start();
  b.start();
  const std::string seeds[] = {a.addr()};
  b.join(seeds);
  // The join's push/pull goes over a's shared TCP port and still succeeds.
  REQUIRE(run_until(
      loop, [&] { return a.swim().num_live() == 2 && b.swim().num_live() == 2; }, 10000ms));
  auto rpc = dial(loop, a.transport().port(), "DOGRPC");
  REQUIRE(run_until(loop, [&] { return adopted == 1; }, 5000ms));
  CHECK(a.transport().stats().tcp_frames_received >= 1);
}

namespace {
struct Events : dog::membership::EventSink {
  std::vector<std::pair<dog::membership::EventKind, uint64_t>> about_b;  // (kind, session)
  void on_member_event(const dog::membership::Event& e) override {
    if (e.member->name == "b") about_b.emplace_back(e.kind, e.member->session);
  }
};
}  // namespace

TEST_CASE("swim_real: a host restarted with the same name and port is a new member",
          "[swim_real]") {
  namespace mb = dog::membership;
  dog::node::Loop loop;
  SwimIo io(loop.io());
  auto opts = [](const char* name, const std::string& bind) {
    SwimHostOptions o;
    o.config = mb::Config::local();
    o.name = std::string(name);
    o.bind_addr = bind;
    o.key.fill(9);
    return o;
  };
  Events ev;
  SwimHost a(io, opts("a", "127.0.0.1:0"), &ev);
  auto b = std::make_unique<SwimHost>(io, opts("b", "127.0.0.1:0"), nullptr);
  const std::string b_addr = b->addr();
  const uint64_t first_session = b->swim().config().session_id;
  CHECK(first_session > 1);  // from the realtime clock, never the Config default
  a.start();
  b->start();
  const std::string seeds[] = {a.addr()};
  b->join(seeds);
  REQUIRE(run_until(loop, [&] { return a.swim().num_live() == 2; }, 10000ms));
  CHECK(a.swim().member("b")->session == first_session);
  // Crash and restart on the same address, before a can notice the crash.
  b.reset();
  b = std::make_unique<SwimHost>(io, opts("b", b_addr), nullptr);
  CHECK(b->swim().config().session_id > first_session);
  b->start();
  b->join(seeds);
  REQUIRE(run_until(
      loop,
      [&] { return a.swim().member("b")->session == b->swim().config().session_id; }, 10000ms));
  // a reports the old run dead, then the new run joining.
  REQUIRE(ev.about_b.size() >= 3);
  CHECK(ev.about_b[0] == std::pair{mb::EventKind::kJoin, first_session});
  const auto n = ev.about_b.size();
  CHECK(ev.about_b[n - 2] == std::pair{mb::EventKind::kDead, first_session});
  CHECK(ev.about_b[n - 1] == std::pair{mb::EventKind::kJoin, b->swim().config().session_id});
  CHECK(a.swim().num_live() == 2);
  // A fixed session must be chosen explicitly: the Config default would hide restarts.
  auto fixed = opts("c", "127.0.0.1:0");
  fixed.session_from_realtime = false;
  CHECK_THROWS_AS(SwimHost(io, fixed, nullptr), std::invalid_argument);
  fixed.config.session_id = 77;
  SwimHost c(io, fixed, nullptr);
  CHECK(c.swim().config().session_id == 77);
}
