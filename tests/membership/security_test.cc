// Every bad packet is dropped, counted, and changes nothing.
#include <catch2/catch.hpp>

#include "harness.h"
#include "membership/rng.h"

using namespace dog::membership;
using namespace dog::membership::test;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

struct Snapshot {
  uint64_t digest, epoch, incarnation;
  size_t live, queued;
  explicit Snapshot(const Swim& s)
      : digest(s.digest()), epoch(s.view_epoch()), incarnation(s.incarnation()), live(s.num_live()),
        queued(s.queued_broadcasts()) {}
  bool operator==(const Snapshot&) const = default;
};

// Two members that know each other; returns the first datagram b sends to a (a ping).
std::vector<uint8_t> ping_from_b(Node& a, Node& b) {
  a.swim.TEST_install({*b.swim.member("b")});
  b.swim.TEST_install({*a.swim.member("a")});
  b.swim.start();
  for (int i = 0; i < 40 && b.transport.sent.empty(); ++i) b.advance(milliseconds(50));
  REQUIRE(!b.transport.sent.empty());
  auto pkt = b.transport.sent.front();
  REQUIRE(pkt.to == "a");
  REQUIRE_FALSE(pkt.stream);
  b.transport.sent.clear();
  return pkt.bytes;
}

}  // namespace

TEST_CASE("a valid ping is acked once and its replay is dropped and counted") {
  Node a("a", test_key(1)), b("b", test_key(1));
  auto ping = ping_from_b(a, b);
  a.swim.on_datagram("b", ping);
  REQUIRE(a.transport.sent.size() == 1);
  CHECK(a.transport.sent[0].to == "b");
  const Snapshot before(a.swim);
  a.swim.on_datagram("b", ping);
  CHECK(a.swim.stats().dropped_replay == 1);
  CHECK(a.transport.sent.size() == 1);
  CHECK(Snapshot(a.swim) == before);
  // The ack goes back to b and completes b's probe.
  b.swim.on_datagram("a", a.transport.sent[0].bytes);
  CHECK(b.swim.stats().dropped_total() == 0);
}

TEST_CASE("tampered garbage oversized and foreign-key datagrams are dropped without state change") {
  Node a("a", test_key(1)), b("b", test_key(1));
  auto ping = ping_from_b(a, b);
  const Snapshot before(a.swim);

  for (size_t i = 0; i < ping.size(); i += 7) {
    auto t = ping;
    t[i] ^= 0x40;
    a.swim.on_datagram("b", t);
  }
  const uint64_t tampered = (ping.size() + 6) / 7;
  CHECK(a.swim.stats().dropped_auth == tampered);

  Rng rng(5);
  for (int i = 0; i < 200; ++i) {
    std::vector<uint8_t> junk(rng.uniform(1400));
    for (auto& x : junk) x = static_cast<uint8_t>(rng.next());
    a.swim.on_datagram("b", junk);
  }
  CHECK(a.swim.stats().dropped_auth == tampered + 200);

  std::vector<uint8_t> big(1401, 1);
  a.swim.on_datagram("b", big);
  CHECK(a.swim.stats().dropped_oversized == 1);

  Node ea("a", test_key(2)), eb("b", test_key(2));  // same names, another cluster key
  auto forged = ping_from_b(ea, eb);
  a.swim.on_datagram("b", forged);
  CHECK(a.swim.stats().dropped_auth == tampered + 201);

  CHECK(a.transport.sent.empty());
  CHECK(Snapshot(a.swim) == before);
  // The genuine packet still works afterwards.
  a.swim.on_datagram("b", ping);
  CHECK(a.transport.sent.size() == 1);
}

TEST_CASE("authenticated but malformed datagrams are dropped as malformed") {
  Node a("a", test_key(1));
  a.swim.start();
  const Snapshot before(a.swim);
  Keyring ring(test_key(1));
  Rng rng(6);
  uint64_t counter = 0;
  for (int i = 0; i < 100; ++i) {
    std::vector<uint8_t> junk(1 + rng.uniform(300));
    for (auto& x : junk) x = static_cast<uint8_t>(rng.next());
    a.swim.on_datagram("b", seal_as_peer(ring, junk, kDatagramAd, ++counter));
  }
  // An empty-name message is structurally valid capnp but violates the contract.
  Datagram d;
  d.kind = MsgKind::kGossip;
  std::vector<uint8_t> plain;
  encode(d, plain);
  a.swim.on_datagram("b", seal_as_peer(ring, plain, kDatagramAd, ++counter));
  CHECK(a.swim.stats().dropped_malformed == 101);
  CHECK(Snapshot(a.swim) == before);
}

TEST_CASE("a node without the cluster key can neither join nor inject updates") {
  Node a("a", test_key(1));
  a.swim.start();
  Node intruder("evil", test_key(3));
  intruder.swim.start();
  std::vector<std::string> seeds{"a"};
  intruder.swim.join(seeds);
  REQUIRE(!intruder.transport.sent.empty());
  const Snapshot before(a.swim);
  for (auto& p : intruder.transport.sent) {
    if (p.stream) a.swim.on_stream("evil", p.bytes);
    else a.swim.on_datagram("evil", p.bytes);
  }
  CHECK(a.swim.stats().dropped_auth == intruder.transport.sent.size());
  CHECK(a.swim.num_live() == 1);
  CHECK_FALSE(a.swim.member("evil"));
  CHECK(a.transport.sent.empty());
  CHECK(Snapshot(a.swim) == before);

  // The same join sealed with the right key is accepted (the test can fail both ways).
  Node friendly("good", test_key(1));
  friendly.swim.join(seeds);
  a.swim.on_stream("good", friendly.transport.sent.at(0).bytes);
  CHECK(a.swim.member("good"));
  CHECK(a.swim.num_live() == 2);
}

TEST_CASE("oversized and replayed stream frames are dropped") {
  Node a("a", test_key(1));
  Node b("b", test_key(1));
  std::vector<std::string> seeds{"a"};
  b.swim.join(seeds);
  auto frame = b.transport.sent.at(0).bytes;
  a.swim.on_stream("b", frame);
  REQUIRE(a.swim.num_live() == 2);
  const Snapshot before(a.swim);
  a.swim.on_stream("b", frame);
  CHECK(a.swim.stats().dropped_replay == 1);
  std::vector<uint8_t> huge(Config::lan().max_stream_bytes + 1, 0);
  a.swim.on_stream("b", huge);
  CHECK(a.swim.stats().dropped_oversized == 1);
  CHECK(Snapshot(a.swim) == before);
}

TEST_CASE("a ping addressed to another node name is not acked") {
  Node a("a", test_key(1)), b("b", test_key(1));
  auto ping = ping_from_b(a, b);
  Node imposter("a2", test_key(1));
  imposter.swim.on_datagram("b", ping);
  CHECK(imposter.swim.stats().dropped_misdirected == 1);
  CHECK(imposter.transport.sent.empty());
}

TEST_CASE("rolling key rotation keeps two members talking") {
  const auto k1 = test_key(1), k2 = test_key(2);
  Node a("a", k1), b("b", k1);
  a.ring.install(k2);
  b.ring.install(k2);
  b.ring.use(k2);  // b already seals with k2, a still with k1
  auto ping = ping_from_b(a, b);
  a.swim.on_datagram("b", ping);
  REQUIRE(a.transport.sent.size() == 1);
  b.swim.on_datagram("a", a.transport.sent[0].bytes);
  CHECK(b.swim.stats().dropped_auth == 0);
  CHECK(a.swim.stats().dropped_auth == 0);
  // Without the install step a would have dropped b's packets.
  Node c("a", k1), d("b", k1);
  d.ring.install(k2);
  d.ring.use(k2);
  auto ping2 = ping_from_b(c, d);
  c.swim.on_datagram("b", ping2);
  CHECK(c.swim.stats().dropped_auth == 1);
}
