// ConnectionManager + calls against the in-process object host: nodes on one loop, real
// loopback TCP, the full secure channel.
#include <catch2/catch.hpp>

#include "rpc/calls.h"
#include "tests/rpc/harness.h"
#include "tests/rpc/manager_helpers.h"

using namespace dog::rpc;
using namespace dog::rpc::testing;
using dog::node::Loop;

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
  // Both found the duplicate; whichever retired it first closed it for the other too.
  CHECK(a.manager->stats().duplicates == 1);
  CHECK(b.manager->stats().duplicates == 1);
  CHECK(a.manager->stats().retired + b.manager->stats().retired >= 1);
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
