// ConnectionManager + calls against the in-process object host: nodes on one loop, real
// loopback TCP, the full secure channel.
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include "rpc/calls.h"
#include "rpc/secure_channel.h"
#include "tests/rpc/harness.h"

using namespace dog::rpc;
using namespace dog::rpc::testing;
using dog::node::Loop;

namespace {

Target target_of(uint8_t first) {
  Target t;
  t.ns = "Room";
  t.id.fill(0);
  t.id[0] = first;
  return t;
}

Request echo(std::string body) {
  Request r;
  r.method = "POST";
  r.path = "/echo";
  r.body = std::move(body);
  return r;
}

Resolver always(std::string node, uint64_t epoch = 1) {
  return [node, epoch](uint64_t) { return Routed{node, epoch}; };
}

ErrorKind error_of(Loop& loop, kj::Promise<DeliverOutcome> p) {
  ErrorKind kind = ErrorKind::kFailed;
  bool failed = false;
  p.then([](DeliverOutcome) {}, [&](kj::Exception&& e) {
     failed = true;
     kind = classify(e);
   }).wait(loop.wait_scope());
  REQUIRE(failed);
  return kind;
}

}  // namespace

TEST_CASE("rpc manager: a request round-trips, and the connection serves both directions", "[rpc][manager]") {
  Loop loop;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1));
  a.manager->add_peer("b", loopback(b.port));
  auto out = deliver(*a.manager, target_of(1), echo("hi"), always("b"), 2 * kj::SECONDS)
                 .wait(loop.wait_scope());
  CHECK(out.status == 200);
  CHECK(out.body == "echo:hi");
  CHECK(out.attempts == 1);
  CHECK(out.node == "b");
  REQUIRE(wait_until(loop, [&] { return b.manager->connected("a"); }));
  // b calls a over the connection a opened: no dial.
  auto back = deliver(*b.manager, target_of(2), echo("back"), always("a"), 2 * kj::SECONDS)
                  .wait(loop.wait_scope());
  CHECK(back.body == "echo:back");
  CHECK(b.manager->stats().dials == 0);
  CHECK(a.manager->stats().dials == 1);
  CHECK(a.manager->in_flight("b") == 0);
}

TEST_CASE("rpc manager: a not-owner refusal re-routes exactly once", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(3);
  TestPeer a(loop, "a", key), b(loop, "b", key), c(loop, "c", key);
  a.manager->add_peer("b", loopback(b.port));
  a.manager->add_peer("c", loopback(c.port));
  b.state.owns = [](auto) { return false; };
  b.state.view_epoch = 7;
  b.state.owner_hint = "c";
  c.state.view_epoch = 7;
  std::vector<uint64_t> asked;
  Resolver view = [&](uint64_t at_least) {
    asked.push_back(at_least);
    return at_least >= 7 ? Routed{"c", 7} : Routed{"b", 5};
  };
  auto out = deliver(*a.manager, target_of(1), echo("x"), view, 2 * kj::SECONDS).wait(loop.wait_scope());
  CHECK(out.attempts == 2);
  CHECK(out.node == "c");
  CHECK(out.body == "echo:x");
  CHECK(asked == std::vector<uint64_t>{0, 7});
  CHECK(b.state.refused == 1);

  // When the second owner refuses too, the refusal is the answer: no third attempt.
  c.state.owns = [](auto) { return false; };
  asked.clear();
  auto refused = deliver(*a.manager, target_of(1), echo("x"), view, 2 * kj::SECONDS).wait(loop.wait_scope());
  CHECK(refused.not_owner);
  CHECK(refused.refused_epoch == 7);
  CHECK(refused.attempts == 2);
  CHECK(asked.size() == 2);
}

TEST_CASE("rpc manager: a deadline fails the call and cancels the work on the peer", "[rpc][manager]") {
  Loop loop;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1));
  a.manager->add_peer("b", loopback(b.port));
  Request hang;
  hang.path = "/hang";
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), hang, always("b"), 50 * kj::MILLISECONDS)) ==
        ErrorKind::kDeadline);
  CHECK(b.state.hanging == 1);
  CHECK(wait_until(loop, [&] { return b.state.cancelled == 1; }));
  CHECK(a.manager->in_flight("b") == 0);
  CHECK(a.manager->stats().deadlines == 1);
  // A call that finishes within its deadline is unaffected.
  Request slow;
  slow.path = "/slow";
  b.state.slow_delay = 20 * kj::MILLISECONDS;
  auto ok = deliver(*a.manager, target_of(1), slow, always("b"), 2 * kj::SECONDS).wait(loop.wait_scope());
  CHECK(ok.body == "slow");
}

TEST_CASE("rpc manager: dropping a call's promise cancels it on the peer", "[rpc][manager]") {
  Loop loop;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1));
  a.manager->add_peer("b", loopback(b.port));
  Request hang;
  hang.path = "/hang";
  {
    auto p = deliver(*a.manager, target_of(1), hang, always("b"), 10 * kj::SECONDS);
    REQUIRE(wait_until(loop, [&] { return b.state.hanging == 1; }));
    CHECK(a.manager->in_flight("b") == 1);
  }
  CHECK(a.manager->in_flight("b") == 0);
  CHECK(wait_until(loop, [&] { return b.state.cancelled == 1; }));
}

TEST_CASE("rpc manager: calls beyond the per-peer cap are refused as OVERLOADED", "[rpc][manager]") {
  Loop loop;
  ManagerConfig cfg;
  cfg.max_in_flight_per_peer = 2;
  TestPeer a(loop, "a", key_from(1), cfg), b(loop, "b", key_from(1));
  a.manager->add_peer("b", loopback(b.port));
  Request hang;
  hang.path = "/hang";
  auto p1 = deliver(*a.manager, target_of(1), hang, always("b"), 10 * kj::SECONDS);
  auto p2 = deliver(*a.manager, target_of(1), hang, always("b"), 10 * kj::SECONDS);
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo("3"), always("b"), 10 * kj::SECONDS)) ==
        ErrorKind::kOverloaded);
  CHECK(a.manager->stats().refused_overloaded == 1);
}

TEST_CASE("rpc manager: a peer declared dead fails calls in flight and new calls fast", "[rpc][manager]") {
  Loop loop;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1));
  a.manager->add_peer("b", loopback(b.port));
  Request hang;
  hang.path = "/hang";
  auto inflight = deliver(*a.manager, target_of(1), hang, always("b"), 10 * kj::SECONDS);
  REQUIRE(wait_until(loop, [&] { return b.state.hanging == 1; }));
  a.manager->mark_dead("b");
  CHECK(error_of(loop, kj::mv(inflight)) == ErrorKind::kPeerDead);
  CHECK_FALSE(a.manager->connected("b"));
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo("x"), always("b"), 10 * kj::SECONDS)) ==
        ErrorKind::kPeerDead);
  CHECK(a.manager->stats().refused_dead == 1);
  a.manager->mark_alive("b");
  auto ok = deliver(*a.manager, target_of(1), echo("again"), always("b"), 2 * kj::SECONDS).wait(loop.wait_scope());
  CHECK(ok.body == "echo:again");
  CHECK(a.manager->stats().dials == 2);
}

TEST_CASE("rpc manager: failed dials back off with jitter and grow", "[rpc][manager]") {
  Loop loop;
  ManagerConfig cfg;
  cfg.backoff_initial = 40 * kj::MILLISECONDS;
  cfg.backoff_max = 200 * kj::MILLISECONDS;
  TestPeer a(loop, "a", key_from(1), cfg);
  uint16_t closed_port;
  {
    asio::ip::tcp::acceptor probe(loop.io(), loopback(0));
    closed_port = probe.local_endpoint().port();
  }  // nothing listens there any more
  a.manager->add_peer("gone", loopback(closed_port));
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo("x"), always("gone"), kj::SECONDS)) ==
        ErrorKind::kDisconnected);
  // Let the dial's cleanup run, then the backoff window is open.
  loop.timer().afterDelay(1 * kj::MILLISECONDS).wait(loop.wait_scope());
  auto first = a.manager->backoff_remaining("gone");
  CHECK(first > 0 * kj::MILLISECONDS);
  CHECK(first <= 40 * kj::MILLISECONDS);
  // During the backoff, calls fail fast without dialling.
  auto dials = a.manager->stats().dials;
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo("x"), always("gone"), kj::SECONDS)) ==
        ErrorKind::kDisconnected);
  CHECK(a.manager->stats().dials == dials);
  CHECK(a.manager->stats().refused_backoff == 1);
  // After it, the next call dials again; a second failure doubles the base (jitter [0.5, 1)).
  loop.timer().afterDelay(a.manager->backoff_remaining("gone")).wait(loop.wait_scope());
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo("x"), always("gone"), kj::SECONDS)) ==
        ErrorKind::kDisconnected);
  CHECK(a.manager->stats().dials == dials + 1);
  loop.timer().afterDelay(1 * kj::MILLISECONDS).wait(loop.wait_scope());
  auto second = a.manager->backoff_remaining("gone");
  CHECK(second >= 38 * kj::MILLISECONDS);
  CHECK(second <= 80 * kj::MILLISECONDS);
}

TEST_CASE("rpc manager: a request body streams with flow control", "[rpc][manager]") {
  Loop loop;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1));
  a.manager->add_peer("b", loopback(b.port));
  std::string body(3 << 20, '\0');
  uint64_t sum = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = char(i * 7 + 1);
    sum += uint8_t(body[i]);
  }
  StringInput in(body, 100 * 1024);
  Request r;
  r.method = "PUT";
  r.path = "/upload";
  auto out = deliver_streamed(*a.manager, "b", 1, target_of(1), r, in, 64 * 1024, 5 * kj::SECONDS)
                 .wait(loop.wait_scope());
  CHECK(out.status == 200);
  CHECK(out.body == "bytes=" + std::to_string(body.size()) + " sum=" + std::to_string(sum));

  // Refused before any body byte moves.
  b.state.owns = [](auto) { return false; };
  StringInput unused(body);
  auto refused = deliver_streamed(*a.manager, "b", 1, target_of(1), r, unused, 64 * 1024, 5 * kj::SECONDS)
                     .wait(loop.wait_scope());
  CHECK(refused.not_owner);
}

TEST_CASE("rpc manager: a response body streams into the caller's ByteStream", "[rpc][manager]") {
  Loop loop;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1));
  a.manager->add_peer("b", loopback(b.port));
  std::string got;
  bool ended = false;
  wire::ByteStream::Client sink = kj::heap<CollectBytes>(got, ended);
  const uint64_t n = 2 * 1024 * 1024 + 17;
  auto resp = a.manager
                  ->call("b", 5 * kj::SECONDS,
                         [&](wire::Node::Client node) {
                           auto req = node.deliverRequest();
                           set_target(req.initTarget(), target_of(1));
                           req.initHead().setPath(kj::str("/big?", n));
                           req.setResponseBody(sink);
                           return kj::Promise<capnp::Response<wire::Node::DeliverResults>>(req.send());
                         })
                  .wait(loop.wait_scope());
  CHECK(resp.getResult().getResponse().getBody().size() == 0);
  CHECK(ended);
  REQUIRE(got.size() == n);
  bool ok = true;
  for (uint64_t i = 0; i < n; i += 4093) ok = ok && uint8_t(got[i]) == uint8_t(i * 31 + 7);
  CHECK(ok);
}

TEST_CASE("rpc manager: fan-out to 1000 sockets on a node is one message", "[rpc][manager]") {
  Loop loop;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1));
  a.manager->add_peer("b", loopback(b.port));
  auto resp = a.manager
                  ->call("b", 5 * kj::SECONDS,
                         [&](wire::Node::Client node) {
                           auto req = node.fanOutRequest();
                           auto m = req.initMessage();
                           set_target(m.initGroup(), target_of(9));
                           m.setKind(wire::FanOutKind::BROADCAST);
                           auto rs = m.initRecipients(1002);
                           for (uint32_t i = 0; i < 1002; ++i) rs.set(i, i < 1000 ? i : 5000 + i);
                           m.initExcept(1).set(0, 3);
                           m.initMessage().setText("hello room");
                           return kj::Promise<capnp::Response<wire::Node::FanOutResults>>(req.send());
                         })
                  .wait(loop.wait_scope());
  CHECK(resp.getResult().getDelivered() == 999);
  CHECK(resp.getResult().getMissing().size() == 2);
  CHECK(b.state.fanout_delivered == 999);
}

TEST_CASE("rpc manager: gossip collects per-peer results within one deadline", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(1);
  TestPeer a(loop, "a", key), b(loop, "b", key), c(loop, "c", key);
  a.manager->add_peer("b", loopback(b.port));
  a.manager->add_peer("c", loopback(c.port));
  a.manager->mark_dead("c");
  auto results = gossip(*a.manager, {"b", "c", "nowhere"}, target_of(4), "scores", "42",
                        500 * kj::MILLISECONDS)
                     .wait(loop.wait_scope());
  REQUIRE(results.size() == 3);
  CHECK(results[0].ok);
  CHECK(results[0].reply == "b:42");
  CHECK_FALSE(results[1].ok);
  CHECK(results[1].error == ErrorKind::kPeerDead);
  CHECK_FALSE(results[2].ok);
  CHECK(results[2].error == ErrorKind::kDisconnected);
}

TEST_CASE("rpc manager: a message over the receiver's size limit drops the connection, not the node", "[rpc][manager]") {
  Loop loop;
  ManagerConfig small;
  small.traversal_limit_words = 4096;  // 32 KiB
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1), small);
  a.manager->add_peer("b", loopback(b.port));
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo(std::string(256 * 1024, 'q')), always("b"),
                               2 * kj::SECONDS)) == ErrorKind::kDisconnected);
  CHECK(wait_until(loop, [&] { return b.manager->stats().disconnects >= 1; }));
  // The node still serves: a fresh connection carries a small request.
  REQUIRE(wait_until(loop, [&] { return !a.manager->connected("b"); }));
  auto ok = deliver(*a.manager, target_of(1), echo("small"), always("b"), 2 * kj::SECONDS).wait(loop.wait_scope());
  CHECK(ok.body == "echo:small");
}

TEST_CASE("rpc manager: a node without the cluster key cannot call in", "[rpc][manager]") {
  Loop loop;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(2));
  a.manager->add_peer("b", loopback(b.port));
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo("x"), always("b"), 2 * kj::SECONDS)) ==
        ErrorKind::kDisconnected);
  CHECK(wait_until(loop, [&] { return b.manager->stats().channel.bad_mac == 1; }));
  CHECK(b.state.delivered == 0);
}

TEST_CASE("rpc manager: simultaneous dials settle on one connection per pair", "[rpc][manager]") {
  Loop loop;
  ManagerConfig cfg;
  cfg.retire_grace = 30 * kj::MILLISECONDS;
  TestPeer a(loop, "a", key_from(1), cfg), b(loop, "b", key_from(1), cfg);
  a.manager->add_peer("b", loopback(b.port));
  b.manager->add_peer("a", loopback(a.port));
  // Both dial before either connection exists.
  auto pa = deliver(*a.manager, target_of(1), echo("from a"), always("b"), 2 * kj::SECONDS);
  auto pb = deliver(*b.manager, target_of(1), echo("from b"), always("a"), 2 * kj::SECONDS);
  CHECK(pa.wait(loop.wait_scope()).body == "echo:from a");
  CHECK(pb.wait(loop.wait_scope()).body == "echo:from b");
  CHECK(a.manager->stats().dials == 1);
  CHECK(b.manager->stats().dials == 1);
  // Each side retires the connection dialled by "b" and keeps the one dialled by "a".
  REQUIRE(wait_until(loop, [&] {
    return a.manager->connection_count() == 1 && b.manager->connection_count() == 1;
  }));
  CHECK(a.manager->stats().retired == 1);
  CHECK(b.manager->stats().retired == 1);
  // The survivor carries calls both ways.
  CHECK(deliver(*a.manager, target_of(1), echo("1"), always("b"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:1");
  CHECK(deliver(*b.manager, target_of(1), echo("2"), always("a"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:2");
  CHECK(a.manager->connection_count() == 1);
  CHECK(b.manager->connection_count() == 1);
  CHECK(a.manager->stats().dials == 1);
  CHECK(b.manager->stats().dials == 1);
}

TEST_CASE("rpc manager: identify answers ok on the owner and not-owner elsewhere", "[rpc][manager]") {
  Loop loop;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1));
  a.manager->add_peer("b", loopback(b.port));
  b.state.owns = [](kj::ArrayPtr<const kj::byte> id) { return id.size() == 32 && id[0] == 1; };
  b.state.view_epoch = 12;
  auto ask = [&](uint8_t first) {
    return a.manager
        ->call("b", kj::SECONDS,
               [first](wire::Node::Client node) {
                 auto req = node.identifyRequest();
                 set_target(req.initTarget(), target_of(first));
                 req.setEpoch(12);
                 return kj::Promise<capnp::Response<wire::Node::IdentifyResults>>(req.send());
               })
        .wait(loop.wait_scope());
  };
  CHECK(ask(1).getResult().isOk());
  auto refused = ask(2);
  REQUIRE(refused.getResult().isNotOwner());
  CHECK(refused.getResult().getNotOwner().getEpoch() == 12);
}

TEST_CASE("rpc manager: a call promise may outlive its manager and then fails", "[rpc][manager]") {
  Loop loop;
  TestPeer b(loop, "b", key_from(1));
  auto a = std::make_unique<TestPeer>(loop, "a", key_from(1));
  a->manager->add_peer("b", loopback(b.port));
  Request hang;
  hang.path = "/hang";
  auto pending = deliver(*a->manager, target_of(1), hang, always("b"), 50 * kj::MILLISECONDS);
  REQUIRE(wait_until(loop, [&] { return b.state.hanging == 1; }));
  a.reset();  // the manager goes first; the promise is still held
  auto e = kj::runCatchingExceptions([&] { pending.wait(loop.wait_scope()); });
  CHECK(e != nullptr);
}

TEST_CASE("rpc manager: silent connections beyond the handshake cap evict the oldest, not real dials", "[rpc][manager]") {
  Loop loop;
  ManagerConfig cap;
  cap.max_pending_handshakes = 2;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1), cap);
  a.manager->add_peer("b", loopback(b.port));
  // Five silent clients: more than the cap, none of them says a word.
  std::vector<kj::Own<kj::AsyncIoStream>> silent;
  for (int i = 0; i < 5; ++i) {
    silent.push_back(dog::node::connect_stream(loop.io(), loopback(b.port)).wait(loop.wait_scope()));
  }
  REQUIRE(wait_until(loop, [&] { return b.manager->stats().accepted == 5; }));
  CHECK(b.manager->stats().evicted_handshakes == 3);
  // No keypair is made for a connection that has not sent a byte.
  CHECK(b.manager->stats().channel.keypairs == 0);
  // A real dial still gets in at once: it evicts the oldest silent one instead of being refused.
  auto ok = deliver(*a.manager, target_of(1), echo("in"), always("b"), 2 * kj::SECONDS).wait(loop.wait_scope());
  CHECK(ok.body == "echo:in");
  CHECK(b.manager->stats().evicted_handshakes == 4);
  CHECK(a.manager->stats().dial_failures == 0);
  // An evicted client sees its connection closed.
  char c;
  CHECK(silent[0]->tryRead(&c, 1, 1).wait(loop.wait_scope()) == 0);
}

TEST_CASE("rpc manager: accept() takes over a connection accepted by another transport", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(1);
  TestPeer a(loop, "a", key);
  TestPeer b(loop, "b", key, {}, 7, /*listen=*/false);
  // The shared cluster port: someone else owns the acceptor and hands RPC connections over.
  asio::ip::tcp::acceptor shared(loop.io(), loopback(0));
  int handed = 0;
  std::function<void()> accept_one = [&] {
    shared.async_accept([&](std::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      ++handed;
      b.manager->accept(std::move(s));
      accept_one();
    });
  };
  accept_one();
  a.manager->add_peer("b", loopback(shared.local_endpoint().port()));
  auto out = deliver(*a.manager, target_of(1), echo("shared"), always("b"), 2 * kj::SECONDS)
                 .wait(loop.wait_scope());
  CHECK(out.body == "echo:shared");
  CHECK(handed == 1);
  CHECK(b.manager->stats().accepted == 1);
  CHECK(b.manager->stats().channel.handshakes_ok == 1);
  // The handed-over connection is adopted like a listened one: b calls a back over it.
  REQUIRE(wait_until(loop, [&] { return b.manager->connected("a"); }));
  auto back = deliver(*b.manager, target_of(2), echo("back"), always("a"), 2 * kj::SECONDS)
                  .wait(loop.wait_scope());
  CHECK(back.body == "echo:back");
  CHECK(b.manager->stats().dials == 0);
  // The cap and the handshake checks apply too: a peer without the key is refused and counted.
  TestPeer stranger(loop, "x", key_from(2));
  stranger.manager->add_peer("b", loopback(shared.local_endpoint().port()));
  CHECK(error_of(loop, deliver(*stranger.manager, target_of(1), echo("x"), always("b"), 2 * kj::SECONDS)) ==
        ErrorKind::kDisconnected);
  CHECK(wait_until(loop, [&] { return b.manager->stats().channel.bad_mac == 1; }));
  CHECK(b.manager->stats().accepted == 2);
}

namespace {

capnp::Response<wire::Node::OpenSocketResults> open_relay(Loop& loop, ConnectionManager& m,
                                                          const std::string& peer,
                                                          wire::WsSink::Client to_client) {
  return m
      .call(peer, 2 * kj::SECONDS,
            [&](wire::Node::Client node) {
              auto req = node.openSocketRequest();
              set_target(req.initTarget(), target_of(5));
              req.initInfo().initHead().setPath("/echo");
              req.setToClient(to_client);
              return kj::Promise<capnp::Response<wire::Node::OpenSocketResults>>(req.send());
            })
      .wait(loop.wait_scope());
}

}  // namespace

TEST_CASE("rpc manager: a duplicate connection carrying a relay is not closed under it", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(1);
  ManagerConfig cfg;
  cfg.retire_grace = 20 * kj::MILLISECONDS;
  cfg.retire_poll = 10 * kj::MILLISECONDS;
  TestPeer a(loop, "a", key, cfg), b(loop, "b", key, cfg);
  int a_lost_b = 0, b_lost_a = 0;
  a.manager->set_on_disconnect([&](const std::string& peer) { a_lost_b += peer == "b"; });
  b.manager->set_on_disconnect([&](const std::string& peer) { b_lost_a += peer == "a"; });
  b.manager->add_peer("a", loopback(a.port));
  ClientSocket client;
  {
    // b dials a and relays a WebSocket over that connection.
    wire::WsSink::Client to_client = kj::heap<ClientSink>(client);
    auto opened = open_relay(loop, *b.manager, "a", to_client);
    REQUIRE(opened.getResult().isFromClient());
    auto from_client = opened.getResult().getFromClient();
    // A second connection from "b" (a restarted manager, or a re-dial): on a tie the newer
    // wins, so the relay's connection becomes the duplicate.
    TestPeer b2(loop, "b", key, cfg);
    b2.manager->add_peer("a", loopback(a.port));
    CHECK(deliver(*b2.manager, target_of(1), echo("2"), always("a"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:2");
    REQUIRE(wait_until(loop, [&] { return a.manager->stats().duplicates == 1; }));
    // Many times the grace later the relay's connection is still open, and still relays.
    REQUIRE(wait_until(loop, [&] { return a.manager->stats().retire_deferred >= 5; }));
    CHECK(a.manager->stats().retired == 0);
    CHECK(a.manager->connection_count("b") == 2);
    auto req = from_client.sendRequest();
    req.initMessage().setText("still here");
    req.send().wait(loop.wait_scope());
    REQUIRE(wait_until(loop, [&] { return client.texts.size() == 1; }));
    CHECK(client.texts[0] == "still here");
    CHECK(b_lost_a == 0);
    b2.manager.reset();  // the winner goes; its own connection ends, the relay's stays
    REQUIRE(wait_until(loop, [&] { return a.manager->connection_count("b") == 1; }));
    CHECK(a_lost_b == 0);
    // The relay ends here: b drops its capabilities (from_client, to_client, the response).
  }
  // Now idle, the duplicate is retired, and a hears that its last connection to b ended.
  REQUIRE(wait_until(loop, [&] { return a.manager->stats().retired == 1; }));
  CHECK(a.manager->connection_count("b") == 0);
  REQUIRE(wait_until(loop, [&] { return a_lost_b == 1 && b_lost_a == 1; }));
}

TEST_CASE("rpc manager: a duplicate connection with a call in flight is not closed under it", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(1);
  ManagerConfig cfg;
  cfg.retire_grace = 20 * kj::MILLISECONDS;
  cfg.retire_poll = 10 * kj::MILLISECONDS;
  TestPeer a(loop, "a", key, cfg), b(loop, "b", key, cfg);
  b.manager->add_peer("a", loopback(a.port));
  Request hang;
  hang.path = "/hang";
  auto pending = kj::heap(deliver(*b.manager, target_of(1), hang, always("a"), 60 * kj::SECONDS));
  REQUIRE(wait_until(loop, [&] { return a.state.hanging == 1; }));
  // A newer connection from "b" makes the one carrying the call the duplicate (on a's side).
  TestPeer b2(loop, "b", key, cfg);
  b2.manager->add_peer("a", loopback(a.port));
  CHECK(deliver(*b2.manager, target_of(1), echo("2"), always("a"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:2");
  REQUIRE(wait_until(loop, [&] { return a.manager->stats().retire_deferred >= 5; }));
  CHECK(a.manager->stats().retired == 0);
  CHECK(a.state.cancelled == 0);
  // The caller gives up: the call ends on both sides, and the duplicate goes.
  pending = nullptr;
  REQUIRE(wait_until(loop, [&] { return a.state.cancelled == 1; }));
  REQUIRE(wait_until(loop, [&] { return a.manager->stats().retired == 1; }));
  CHECK(a.manager->connection_count("b") == 1);
}

TEST_CASE("rpc manager: a retire timer only ever closes the connection it was set for", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(1);
  ManagerConfig cfg;
  cfg.retire_grace = 100 * kj::MILLISECONDS;
  TestPeer a(loop, "a", key, cfg), c(loop, "c", key);
  auto b = std::make_unique<TestPeer>(loop, "b", key);
  auto b2 = std::make_unique<TestPeer>(loop, "b", key);
  b->manager->add_peer("a", loopback(a.port));
  b2->manager->add_peer("a", loopback(a.port));
  c.manager->add_peer("a", loopback(a.port));
  CHECK(deliver(*b->manager, target_of(1), echo("1"), always("a"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:1");
  CHECK(deliver(*b2->manager, target_of(1), echo("2"), always("a"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:2");
  REQUIRE(wait_until(loop, [&] { return a.manager->stats().duplicates == 1; }));
  // The duplicate (b's) ends before its retire timer fires...
  b.reset();
  REQUIRE(wait_until(loop, [&] { return a.manager->connection_count("b") == 1; }));
  // ...and a new connection arrives, possibly allocated where the old one lived.
  CHECK(deliver(*c.manager, target_of(1), echo("3"), always("a"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:3");
  REQUIRE(wait_until(loop, [&] { return a.manager->connected("c"); }));
  REQUIRE(wait_until(loop, [&] { return a.manager->stats().retire_checks == 1; }, 5000));
  CHECK(a.manager->stats().retired == 0);
  CHECK(a.manager->connected("c"));
  CHECK(a.manager->connection_count() == 2);
  CHECK(deliver(*a.manager, target_of(1), echo("4"), always("c"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:4");
  CHECK(a.manager->stats().dials == 0);
}

TEST_CASE("rpc manager: a dial that never connects fails at connect_timeout and backs off", "[rpc][manager]") {
  Loop loop;
  ManagerConfig cfg;
  cfg.connect_timeout = 100 * kj::MILLISECONDS;
  TestPeer a(loop, "a", key_from(1), cfg);
  // A listener whose accept queue is full: Linux drops further SYNs, so connect() hangs.
  tcp::acceptor full(loop.io());
  full.open(tcp::v4());
  full.bind(loopback(0));
  full.listen(0);
  std::vector<std::unique_ptr<tcp::socket>> fillers;
  int connected = 0;
  for (int i = 0; i < 3; ++i) {
    fillers.push_back(std::make_unique<tcp::socket>(loop.io()));
    fillers.back()->async_connect(full.local_endpoint(), [&](std::error_code ec) { connected += !ec; });
  }
  REQUIRE(wait_until(loop, [&] { return connected >= 1; }));
  a.manager->add_peer("b", full.local_endpoint());
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo("x"), always("b"), 10 * kj::SECONDS)) ==
        ErrorKind::kDisconnected);
  CHECK(a.manager->stats().dial_timeouts == 1);
  CHECK(a.manager->stats().dial_failures == 1);
  loop.timer().afterDelay(1 * kj::MILLISECONDS).wait(loop.wait_scope());
  CHECK(a.manager->backoff_remaining("b") > 0 * kj::SECONDS);
}

TEST_CASE("rpc manager: the runtime hears when the last connection to a peer ends", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(1);
  TestPeer a(loop, "a", key);
  auto b = std::make_unique<TestPeer>(loop, "b", key);
  std::vector<std::string> lost;
  a.manager->set_on_disconnect([&](const std::string& peer) { lost.push_back(peer); });
  a.manager->add_peer("b", loopback(b->port));
  CHECK(deliver(*a.manager, target_of(1), echo("x"), always("b"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:x");
  CHECK(lost.empty());
  // The peer goes away (its process ends): the connection breaks.
  b.reset();
  REQUIRE(wait_until(loop, [&] { return !lost.empty(); }));
  CHECK(lost == std::vector<std::string>{"b"});
  // mark_dead closes the connection: that is heard too.
  TestPeer b2(loop, "b", key);
  a.manager->add_peer("b", loopback(b2.port));
  CHECK(deliver(*a.manager, target_of(1), echo("y"), always("b"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:y");
  a.manager->mark_dead("b");
  REQUIRE(wait_until(loop, [&] { return lost.size() == 2; }));
  CHECK(lost[1] == "b");
}

TEST_CASE("rpc manager: a dial that reaches another node backs off like a failed dial", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(1);
  ManagerConfig cfg;
  cfg.backoff_initial = 40 * kj::MILLISECONDS;
  cfg.backoff_max = 1 * kj::SECONDS;
  TestPeer a(loop, "a", key, cfg), c(loop, "c", key);
  a.manager->add_peer("b", loopback(c.port));  // a stale address: c lives there now
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo("x"), always("b"), kj::SECONDS)) ==
        ErrorKind::kDisconnected);
  CHECK(a.manager->stats().wrong_node == 1);
  loop.timer().afterDelay(1 * kj::MILLISECONDS).wait(loop.wait_scope());
  auto first = a.manager->backoff_remaining("b");
  CHECK(first > 0 * kj::SECONDS);
  CHECK(first <= 40 * kj::MILLISECONDS);
  // During the backoff a call does not dial again.
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo("x"), always("b"), kj::SECONDS)) ==
        ErrorKind::kDisconnected);
  CHECK(a.manager->stats().dials == 1);
  // The second wrong answer doubles the base.
  loop.timer().afterDelay(first).wait(loop.wait_scope());
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo("x"), always("b"), kj::SECONDS)) ==
        ErrorKind::kDisconnected);
  loop.timer().afterDelay(1 * kj::MILLISECONDS).wait(loop.wait_scope());
  CHECK(a.manager->backoff_remaining("b") >= 38 * kj::MILLISECONDS);
  CHECK(a.manager->stats().wrong_node == 2);
}

TEST_CASE("rpc manager: errors are classified by type and origin, never by their text", "[rpc][manager]") {
  Loop loop;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1));
  a.manager->add_peer("b", loopback(b.port));
  // A peer relays failures whose text reads like our own verdicts: they stay remote failures.
  Request dead;
  dead.path = "/raise-peer-dead";
  kj::Maybe<kj::Exception> got;
  deliver(*a.manager, target_of(1), dead, always("b"), kj::SECONDS)
      .then([](DeliverOutcome) {}, [&](kj::Exception&& e) { got = kj::mv(e); })
      .wait(loop.wait_scope());
  KJ_IF_MAYBE(e, got) {
    CHECK(classify(*e) == ErrorKind::kDisconnected);
    CHECK_FALSE(raised_locally(*e));
  } else {
    FAIL("the call succeeded");
  }
  Request late;
  late.path = "/raise-deadline";
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), late, always("b"), kj::SECONDS)) ==
        ErrorKind::kOverloaded);
  // Our own verdicts are typed, survive copies, and cannot be imitated by text.
  auto mine = peer_dead("c");
  CHECK(classify(mine) == ErrorKind::kPeerDead);
  CHECK(classify(kj::cp(mine)) == ErrorKind::kPeerDead);
  CHECK(raised_locally(mine));
  CHECK(classify(deadline_exceeded()) == ErrorKind::kDeadline);
  kj::Exception imitation(kj::Exception::Type::DISCONNECTED, "errors.cc", 2,
                          kj::str(mine.getDescription()));
  CHECK(classify(imitation) == ErrorKind::kDisconnected);
  CHECK(classify(too_many_in_flight("c")) == ErrorKind::kOverloaded);
  CHECK(classify(in_backoff("c")) == ErrorKind::kDisconnected);
}

namespace {

// A stream whose reads never complete once `stuck` is set: a peer that stopped reading.
class StuckReader final : public kj::AsyncIoStream {
 public:
  explicit StuckReader(kj::AsyncIoStream& inner) : inner_(inner) {}
  bool stuck = false;
  kj::Promise<size_t> tryRead(void* b, size_t min, size_t max) override {
    if (stuck) return kj::Promise<size_t>(kj::NEVER_DONE);
    return inner_.tryRead(b, min, max);
  }
  kj::Promise<void> write(const void* b, size_t n) override { return inner_.write(b, n); }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> p) override {
    return inner_.write(p);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_.whenWriteDisconnected(); }
  void shutdownWrite() override { inner_.shutdownWrite(); }

 private:
  kj::AsyncIoStream& inner_;
};

}  // namespace

TEST_CASE("rpc manager: a peer that stops reading cannot grow our send queue without bound", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(1);
  ManagerConfig cfg;
  cfg.max_queued_bytes = 2 << 20;
  TestPeer b(loop, "b", key, cfg);
  // An authenticated peer, speaking Cap'n Proto by hand, that never reads what b sends.
  dog::membership::Keyring ks(key);
  ChannelStats ss;
  auto raw = dog::node::connect_stream(loop.io(), loopback(b.port)).wait(loop.wait_scope());
  auto session = secure_connect(kj::mv(raw), ks, "stuck", loop.timer(), ChannelConfig{}, ss)
                     .wait(loop.wait_scope());
  StuckReader stream(*session.stream);
  stream.stuck = true;
  capnp::TwoPartyVatNetwork net(stream, capnp::rpc::twoparty::Side::CLIENT);
  auto rpc = capnp::makeRpcClient(net);
  capnp::MallocMessageBuilder vat_msg(8);
  auto vat = vat_msg.initRoot<capnp::rpc::twoparty::VatId>();
  vat.setSide(capnp::rpc::twoparty::Side::SERVER);
  auto node = rpc.bootstrap(vat).castAs<wire::Node>();

  // Each call is answered with 256 KiB that b cannot send: its queue grows call by call.
  std::string body(256 * 1024, 'q');
  std::vector<kj::Promise<void>> calls;
  bool saw_soft_refusal = false;
  for (int i = 0; i < 80 && b.manager->stats().queue_overflows == 0; ++i) {
    auto req = node.deliverRequest();
    set_target(req.initTarget(), target_of(1));
    req.initHead().setPath("/echo");
    req.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>(body.data()), body.size()));
    calls.push_back(req.send().ignoreResult().eagerlyEvaluate([](kj::Exception&&) {}));
    REQUIRE(wait_until(loop, [&] {
      return b.state.delivered == uint64_t(i + 1) || b.manager->stats().queue_overflows > 0;
    }, 10000));
    const size_t queued = b.manager->queued_bytes("stuck");
    if (!saw_soft_refusal && queued > cfg.max_queued_bytes / 2 && b.manager->connected("stuck")) {
      // Past half the bound, b's own calls to the stuck peer are refused, not queued.
      CHECK(error_of(loop, deliver(*b.manager, target_of(1), echo("x"), always("stuck"), kj::SECONDS)) ==
            ErrorKind::kOverloaded);
      CHECK(b.manager->stats().refused_queue == 1);
      saw_soft_refusal = true;
    }
  }
  CHECK(saw_soft_refusal);
  // Past the bound the connection is dropped; the queue never held much more than the bound.
  REQUIRE(wait_until(loop, [&] { return b.manager->stats().queue_overflows == 1; }, 10000));
  CHECK(b.manager->stats().queue_peak_bytes <= cfg.max_queued_bytes + (512 << 10));
  CHECK(b.state.delivered < 40);  // 80 calls were offered: b stopped taking them in
  REQUIRE(wait_until(loop, [&] { return b.manager->connection_count() == 0; }));
  // b still serves everyone else.
  TestPeer a(loop, "a", key);
  a.manager->add_peer("b", loopback(b.port));
  CHECK(deliver(*a.manager, target_of(1), echo("fine"), always("b"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:fine");
}

TEST_CASE("rpc manager: the listener pauses on EMFILE instead of spinning", "[rpc][manager]") {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizers' own checks (UBSan's vptr check probes memory through a pipe) need file
  // descriptors; with none left they report false errors. Release builds run this test.
  SUCCEED("skipped under sanitizers: they need descriptors of their own");
  return;
#endif
  Loop loop;
  TestPeer b(loop, "b", key_from(1));
  tcp::socket client(loop.io());
  client.open(tcp::v4());  // its descriptor exists before the limit drops
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  const int lowest_free = dup(0);
  REQUIRE(lowest_free >= 0);
  close(lowest_free);
  {
    // Every descriptor below `lowest_free` is taken: accept() cannot get one.
    rlimit tight = saved;
    tight.rlim_cur = rlim_t(lowest_free);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
    auto restore = kj::defer([&] { setrlimit(RLIMIT_NOFILE, &saved); });
    client.async_connect(loopback(b.port), [](std::error_code) {});
    REQUIRE(wait_until(loop, [&] { return b.manager->stats().accept_errors >= 1; }));
    // The pending connection stays in the backlog; a listener that retried at once would
    // fail again on every loop turn. 50 ms of loop time later it has tried at most twice.
    wait_until(loop, [] { return false; }, 50);
    CHECK(b.manager->stats().accept_errors <= 2);
    CHECK(b.manager->stats().accepted == 0);
  }
  // With descriptors available again, the next try takes the connection.
  REQUIRE(wait_until(loop, [&] { return b.manager->stats().accepted == 1; }));
}
