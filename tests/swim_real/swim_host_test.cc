// Unit tests of node/swim/: address codec, the shared timer queue, the Asio transport (framing,
// limits, hostile input) and SwimHost on real loopback sockets.
#include "node/swim/swim_host.h"

#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "node/loop.h"
#include "node/swim/addr.h"
#include "node/swim/swim_io.h"
#include "node/swim/transport.h"

using namespace dog::node::swim;
namespace mb = dog::membership;
using namespace std::chrono_literals;

namespace {

// Runs the loop until `pred` holds or `timeout` passes; returns pred().
bool run_until(dog::node::Loop& loop, const std::function<bool()>& pred,
               std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    if (loop.io().stopped()) loop.io().restart();
    loop.io().run_for(5ms);
  }
  return pred();
}

void run_for(dog::node::Loop& loop, std::chrono::milliseconds d) {
  run_until(
      loop, [] { return false; }, d);
}

struct Collect : AsioTransport::Receiver {
  std::vector<std::pair<std::string, std::string>> datagrams, streams;
  void on_datagram(std::string_view from, std::span<const uint8_t> b) override {
    datagrams.emplace_back(std::string(from), std::string(b.begin(), b.end()));
  }
  void on_stream(std::string_view from, std::span<const uint8_t> b) override {
    streams.emplace_back(std::string(from), std::string(b.begin(), b.end()));
  }
};

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

mb::Keyring::Key key_of(uint8_t b) {
  mb::Keyring::Key k;
  k.fill(b);
  return k;
}

}  // namespace

TEST_CASE("swim_real: address parse and format", "[swim_real]") {
  auto a = parse_ip_port("127.0.0.1:7946");
  REQUIRE(a);
  CHECK(a->ip.to_string() == "127.0.0.1");
  CHECK(a->port == 7946);
  CHECK(format_ip_port(a->ip, a->port) == "127.0.0.1:7946");
  auto b = parse_ip_port("[::1]:80");
  REQUIRE(b);
  CHECK(b->ip.is_v6());
  CHECK(format_ip_port(b->ip, b->port) == "[::1]:80");
  CHECK(format_ip_port(asio::ip::make_address("10.200.0.255"), 0) == "10.200.0.255:0");
  for (const char* bad : {"", "1.2.3.4", "1.2.3:5", "1.2.3.4.5:6", "256.1.1.1:1", "1.2.3.4:65536",
                          "1.2.3.4:", "a.b.c.d:1", "localhost:80", "[::1]80", "[zz]:1",
                          "1.2.3.4:-1", "01234.1.1.1:1"}) {
    INFO(bad);
    CHECK_FALSE(parse_ip_port(bad));
  }
}

TEST_CASE("swim_real: key hex parsing", "[swim_real]") {
  CHECK(parse_key_hex(std::string(64, 'a')));
  CHECK_FALSE(parse_key_hex(std::string(63, 'a')));
  CHECK_FALSE(parse_key_hex(std::string(62, 'a') + "zz"));
  auto k = parse_key_hex("00ff" + std::string(60, '1'));
  REQUIRE(k);
  CHECK((*k)[0] == 0x00);
  CHECK((*k)[1] == 0xff);
  CHECK((*k)[2] == 0x11);
}

TEST_CASE("swim_real: timer queue multiplexes clients onto one timer", "[swim_real]") {
  dog::node::Loop loop;
  SwimIo io(loop.io());
  std::vector<int> fired;
  QueuedTimer a(io.timers(), [&] { fired.push_back(1); });
  QueuedTimer b(io.timers(), [&] { fired.push_back(2); });
  auto c = std::make_unique<QueuedTimer>(io.timers(), [&] { fired.push_back(3); });
  const auto now = SteadyClock::read();
  a.wake_at(now + 60ms);
  a.wake_at(now + 30ms);   // earlier request supersedes
  a.wake_at(now + 500ms);  // later one is ignored while an earlier is pending
  b.wake_at(now + 10ms);
  c->wake_at(now + 20ms);
  c.reset();  // destroyed before it fires: never runs
  CHECK(io.timers().clients() == 2);
  REQUIRE(run_until(
      loop, [&] { return fired.size() >= 2; }, 2000ms));
  run_for(loop, 100ms);
  CHECK(fired == std::vector<int>{2, 1});  // each once, in time order; c never
  // A client may re-arm from inside its own callback (what Swim::on_timer does).
  int chain = 0;
  QueuedTimer* self = nullptr;
  QueuedTimer d(io.timers(), [&] {
    if (++chain < 5) self->wake_at(SteadyClock::read() + 1ms);
  });
  self = &d;
  d.wake_at(SteadyClock::read());
  REQUIRE(run_until(
      loop, [&] { return chain == 5; }, 2000ms));
}

TEST_CASE("swim_real: transport delivers datagrams and ordered stream frames", "[swim_real]") {
  dog::node::Loop loop;
  SwimIo io(loop.io());
  AsioTransport a(io, "127.0.0.1:0", {}), b(io, "127.0.0.1:0", {});
  Collect ra, rb;
  a.set_receiver(&ra);
  b.set_receiver(&rb);
  a.start();
  b.start();
  CHECK(a.port() != 0);
  CHECK(a.local_addr() == "127.0.0.1:" + std::to_string(a.port()));

  a.send_datagram(b.local_addr(), bytes_of("hello"));
  REQUIRE(run_until(
      loop, [&] { return rb.datagrams.size() == 1; }, 2000ms));
  CHECK(rb.datagrams[0].first == a.local_addr());  // source = the sender's bound UDP address
  CHECK(rb.datagrams[0].second == "hello");

  std::string big(200000, 'x');
  for (int i = 0; i < 5; ++i) a.send_stream(b.local_addr(), bytes_of("frame" + std::to_string(i)));
  a.send_stream(b.local_addr(), bytes_of(big));
  REQUIRE(run_until(
      loop, [&] { return rb.streams.size() == 6; }, 3000ms));
  for (int i = 0; i < 5; ++i) CHECK(rb.streams[i].second == "frame" + std::to_string(i));
  CHECK(rb.streams[5].second == big);
  CHECK(a.stats().tcp_frames_sent == 6);
  CHECK(a.stats().tcp_bytes_sent == 6 * 4 + 5 * 6 + big.size());
  CHECK(a.out_conns() == 1);  // one cached connection carried all six frames
  CHECK(a.stats().tcp_connects == 1);
}

TEST_CASE("swim_real: transport drops oversized and malformed input and keeps serving",
          "[swim_real]") {
  dog::node::Loop loop;
  SwimIo io(loop.io());
  TransportLimits lim;
  lim.max_datagram_bytes = 1400;
  lim.max_frame_bytes = 4096;
  AsioTransport t(io, "127.0.0.1:0", lim);
  Collect r;
  t.set_receiver(&r);
  t.start();

  asio::ip::udp::socket raw(loop.io(),
                            asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const asio::ip::udp::endpoint dst(asio::ip::make_address("127.0.0.1"), t.port());
  std::vector<uint8_t> huge(1401, 0xab);
  raw.send_to(asio::buffer(huge), dst);
  std::vector<uint8_t> max60k(60000, 0xcd);
  raw.send_to(asio::buffer(max60k), dst);
  raw.send_to(asio::buffer(std::string("ok")), dst);
  REQUIRE(run_until(
      loop, [&] { return r.datagrams.size() == 1; }, 2000ms));
  CHECK(r.datagrams[0].second == "ok");
  CHECK(t.stats().udp_dropped_oversized == 2);

  // TCP: a zero length, an over-cap length, and a truncated frame each end their connection.
  auto send_raw_tcp = [&](std::vector<uint8_t> bytes) {
    asio::ip::tcp::socket s(loop.io());
    s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), t.port()));
    asio::write(s, asio::buffer(bytes));
    return s;
  };
  auto s1 = send_raw_tcp({0, 0, 0, 0});
  auto s2 = send_raw_tcp({0, 0, 0x10, 0x01});  // 4097 > 4096
  auto s3 = send_raw_tcp({0xff, 0xff, 0xff, 0xff, 1, 2, 3});
  auto s4 = send_raw_tcp({0, 0, 0, 3, 'a', 'b'});  // truncated, then closed by us
  s4.close();
  REQUIRE(run_until(
      loop, [&] { return t.stats().tcp_bad_frames == 3 && t.in_conns() == 0; }, 3000ms));
  CHECK(r.streams.empty());
  // A well-formed frame after all that still arrives.
  auto s5 = send_raw_tcp({0, 0, 0, 2, 'o', 'k'});
  REQUIRE(run_until(
      loop, [&] { return r.streams.size() == 1; }, 2000ms));
  CHECK(r.streams[0].second == "ok");
  // Outbound: oversized frames and bad addresses are dropped, not sent.
  t.send_stream("127.0.0.1:1", std::span<const uint8_t>(max60k.data(), 5000));
  t.send_stream("not-an-address", bytes_of("x"));
  t.send_datagram("nowhere", bytes_of("x"));
  CHECK(t.stats().tcp_frames_dropped == 2);
  CHECK(t.stats().udp_bad_addr == 1);
}

TEST_CASE("swim_real: transport bounds connections, queues and time", "[swim_real]") {
  dog::node::Loop loop;
  SwimIo io(loop.io());
  TransportLimits lim;
  lim.max_in_conns = 2;
  lim.max_queue_frames = 3;
  lim.in_idle_timeout = 300ms;
  lim.connect_timeout = 500ms;
  AsioTransport t(io, "127.0.0.1:0", lim);
  Collect r;
  t.set_receiver(&r);
  t.start();

  // Connection cap: the third concurrent connection is closed at once.
  std::vector<asio::ip::tcp::socket> conns;
  for (int i = 0; i < 3; ++i) {
    conns.emplace_back(loop.io());
    conns.back().connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), t.port()));
  }
  REQUIRE(run_until(
      loop, [&] { return t.stats().tcp_accepted == 3; }, 2000ms));
  CHECK(t.stats().tcp_rejected == 1);
  CHECK(t.in_conns() == 2);
  // Idle deadline: connections that never send a frame are closed.
  REQUIRE(run_until(
      loop, [&] { return t.in_conns() == 0; }, 3000ms));
  CHECK(t.stats().tcp_timeouts >= 2);

  // Connect failure (nobody listens on the port): queued frames are dropped and counted; the
  // per-connection queue is capped while the connect is pending.
  asio::ip::tcp::acceptor probe(loop.io(),
                                asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string dead = "127.0.0.1:" + std::to_string(probe.local_endpoint().port());
  probe.close();
  for (int i = 0; i < 5; ++i) t.send_stream(dead, bytes_of("x"));
  CHECK(t.stats().tcp_frames_dropped == 2);  // queue holds 3
  REQUIRE(run_until(
      loop, [&] { return t.out_conns() == 0; }, 3000ms));
  CHECK(t.stats().tcp_connect_failures + t.stats().tcp_timeouts >= 1);
  CHECK(t.stats().tcp_frames_dropped == 5);
}

TEST_CASE("swim_real: silent transport drops everything in and out", "[swim_real]") {
  dog::node::Loop loop;
  SwimIo io(loop.io());
  AsioTransport a(io, "127.0.0.1:0", {}), b(io, "127.0.0.1:0", {});
  Collect ra, rb;
  a.set_receiver(&ra);
  b.set_receiver(&rb);
  a.start();
  b.start();
  b.set_silent(true);
  a.send_datagram(b.local_addr(), bytes_of("in"));
  b.send_datagram(a.local_addr(), bytes_of("out"));
  a.send_stream(b.local_addr(), bytes_of("in"));
  b.send_stream(a.local_addr(), bytes_of("out"));
  run_for(loop, 300ms);
  CHECK(ra.datagrams.empty());
  CHECK(rb.datagrams.empty());
  CHECK(ra.streams.empty());
  CHECK(rb.streams.empty());
  CHECK(b.stats().udp_dropped_injected == 2);
  // Loss injection drops about the requested fraction of sends.
  a.set_send_loss(0.5, 7);
  b.set_silent(false);
  for (int i = 0; i < 400; ++i) a.send_datagram(b.local_addr(), bytes_of("x"));
  CHECK(a.stats().udp_dropped_injected > 150);
  CHECK(a.stats().udp_dropped_injected < 250);
}

TEST_CASE("swim_real: hosts on one loop converge, detect a silent member, reject strangers",
          "[swim_real]") {
  dog::node::Loop loop;
  SwimIo io(loop.io());
  std::vector<std::unique_ptr<SwimHost>> hosts;
  auto make = [&](const std::string& name, uint8_t key) {
    SwimHostOptions o;
    o.config = mb::Config::local();
    o.name = name;
    o.key = key_of(key);
    o.seed = 1000 + hosts.size();
    hosts.push_back(std::make_unique<SwimHost>(io, o, nullptr));
    hosts.back()->start();
    return hosts.back().get();
  };
  SwimHost* seed = make("h0", 1);
  for (int i = 1; i < 5; ++i)
    make("h" + std::to_string(i), 1)->join(std::vector<std::string>{seed->addr()});
  auto all_see = [&](size_t n) {
    for (auto& h : hosts)
      if (h->swim().num_live() != n) return false;
    return true;
  };
  REQUIRE(run_until(
      loop, [&] { return all_see(5); }, 10000ms));

  // A member with the wrong key can neither join nor inject.
  SwimIo& io2 = io;
  SwimHostOptions o;
  o.config = mb::Config::local();
  o.name = "intruder";
  o.key = key_of(2);
  SwimHost intruder(io2, o, nullptr);
  intruder.start();
  intruder.join(std::vector<std::string>{seed->addr()});
  run_for(loop, 1500ms);
  CHECK(intruder.swim().num_live() == 1);
  CHECK(all_see(5));
  CHECK(seed->swim().stats().dropped_auth >= 1);

  // Garbage datagrams are dropped and counted by the core.
  asio::ip::udp::socket raw(loop.io(),
                            asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto target = parse_ip_port(seed->addr());
  const uint64_t auth_before = seed->swim().stats().dropped_auth;
  for (int i = 0; i < 20; ++i)
    raw.send_to(asio::buffer(std::string(50 + i, char(i))),
                asio::ip::udp::endpoint(target->ip, target->port));
  REQUIRE(run_until(
      loop, [&] { return seed->swim().stats().dropped_auth >= auth_before + 20; }, 2000ms));

  // A silent member is declared dead by all others.
  hosts[3]->transport().set_silent(true);
  const std::string victim = hosts[3]->name();
  auto dead_everywhere = [&] {
    for (size_t i = 0; i < hosts.size(); ++i) {
      if (i == 3) continue;
      auto m = hosts[i]->swim().member(victim);
      if (!m || m->state != mb::MemberState::kDead) return false;
    }
    return true;
  };
  REQUIRE(run_until(loop, dead_everywhere, 20000ms));
  hosts[3].reset();  // stop it (sockets close)
  for (size_t i = 0; i < hosts.size(); ++i)
    if (hosts[i]) CHECK(hosts[i]->swim().num_live() == 4);
}

TEST_CASE("swim_real: outbound connection cap evicts idle connections, never busy ones",
          "[swim_real]") {
  dog::node::Loop loop;
  SwimIo io(loop.io());
  TransportLimits lim;
  lim.max_out_conns = 1;
  AsioTransport t(io, "127.0.0.1:0", lim), p1(io, "127.0.0.1:0", {}), p2(io, "127.0.0.1:0", {});
  Collect r1, r2;
  p1.set_receiver(&r1);
  p2.set_receiver(&r2);
  t.start();
  p1.start();
  p2.start();
  t.send_stream(p1.local_addr(), bytes_of("one"));
  // While the first connection is still connecting (busy), a second peer cannot get one.
  t.send_stream(p2.local_addr(), bytes_of("dropped"));
  CHECK(t.stats().tcp_frames_dropped == 1);
  REQUIRE(run_until(
      loop, [&] { return r1.streams.size() == 1 && t.stats().tcp_frames_sent == 1; }, 2000ms));
  run_for(loop, 50ms);  // the write completion leaves the connection idle
  // Now the idle connection to p1 is evicted to make room for p2.
  t.send_stream(p2.local_addr(), bytes_of("two"));
  REQUIRE(run_until(
      loop, [&] { return r2.streams.size() == 1; }, 2000ms));
  CHECK(r2.streams[0].second == "two");
  CHECK(t.out_conns() == 1);
  CHECK(t.stats().tcp_frames_dropped == 1);
  CHECK(t.stats().tcp_connects == 2);
}
