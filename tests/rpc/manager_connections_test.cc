// ConnectionManager: connections handed over by another transport, duplicates and their
// retirement, dial timeouts and wrong nodes, the disconnect callback, typed errors.
#include <catch2/catch.hpp>

#include "rpc/calls.h"
#include "tests/rpc/harness.h"
#include "tests/rpc/manager_helpers.h"

using namespace dog::rpc;
using namespace dog::rpc::testing;
using dog::node::Loop;

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

TEST_CASE("rpc manager: an idle connection made under a removed cluster key is closed", "[rpc][manager]") {
  Loop loop;
  auto old_key = key_from(1), new_key = key_from(9);
  ManagerConfig cfg;
  cfg.key_check_interval = 10 * kj::MILLISECONDS;
  TestPeer a(loop, "a", old_key, cfg), b(loop, "b", old_key, cfg);
  std::vector<std::string> a_lost;
  a.manager->set_on_disconnect([&](const std::string& peer) { a_lost.push_back(peer); });
  a.manager->add_peer("b", loopback(b.port));
  CHECK(deliver(*a.manager, target_of(1), echo("old"), always("b"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:old");
  // Rotation: both install and use the new key; the connection made under the old one stays
  // (nothing has been removed yet) for several sweeps.
  a.keyring.install(new_key);
  b.keyring.install(new_key);
  a.keyring.use(new_key);
  b.keyring.use(new_key);
  const auto sweeps_before = b.manager->stats().key_expired;
  wait_until(loop, [] { return false; }, 30);
  CHECK(b.manager->stats().key_expired == sweeps_before);
  CHECK(a_lost.empty());
  // b removes the old key: with no traffic at all, b closes the session within a sweep.
  b.keyring.remove(old_key);
  REQUIRE(wait_until(loop, [&] { return b.manager->stats().key_expired == 1; }));
  REQUIRE(wait_until(loop, [&] { return a_lost.size() == 1; }));
  CHECK(b.manager->stats().channel.key_removed == 1);
  // The next call re-dials under the new key.
  CHECK(deliver(*a.manager, target_of(1), echo("new"), always("b"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:new");
  CHECK(a.manager->stats().dials == 2);
}
