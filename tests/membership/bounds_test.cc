// Issue 12 items 16, 18, 19: replays after reaping, per-channel replay windows, capped
// tombstones in push/pull, and bounded state (member table, replay senders, deadlines).
#include <catch2/catch.hpp>

#include "harness.h"

using namespace dog::membership;
using namespace dog::membership::test;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

std::vector<uint8_t> sealed_push_pull(const Keyring::Key& key, const std::string& from,
                                      std::vector<MemberInfo> members, uint64_t session,
                                      uint64_t counter) {
  PushPull p;
  p.from = from;
  p.from_addr = from;
  p.kind = SyncKind::kFull;
  p.members = std::move(members);
  std::vector<uint8_t> plain;
  encode(p, plain);
  Keyring ring(key);
  return seal_as_peer(ring, plain, kStreamAd, counter, session);
}

std::vector<uint8_t> sealed_gossip(const Keyring::Key& key, const std::string& from,
                                   std::vector<Update> ups, uint64_t session, uint64_t counter) {
  Datagram d;
  d.from = from;
  d.kind = MsgKind::kGossip;
  d.updates = std::move(ups);
  std::vector<uint8_t> plain;
  encode(d, plain);
  Keyring ring(key);
  return seal_as_peer(ring, plain, kDatagramAd, counter, session);
}

MemberInfo rec(const std::string& name, uint64_t inc, uint64_t session) {
  MemberInfo m{name, name, inc, MemberState::kAlive, Meta{}};
  m.session = session;
  return m;
}

Update upd(UpdateKind k, const std::string& node, uint64_t inc, uint64_t session) {
  Update u;
  u.kind = k;
  u.node = node;
  u.addr = k == UpdateKind::kAlive ? node : "";
  u.incarnation = inc;
  u.session = session;
  u.from = "y";
  return u;
}

}  // namespace

TEST_CASE("a captured push-pull replayed after its members were reaped brings nobody back") {
  const auto key = test_key(21);
  Config cfg = Config::lan();
  cfg.tombstone_ttl = seconds(5);
  Node a("a", key, cfg);
  a.swim.start();
  const auto captured = sealed_push_pull(key, "x", {rec("x", 1, 5), rec("m", 1, 6)}, 5, 10);
  a.swim.on_stream("x", captured);
  REQUIRE(a.swim.member("m"));
  a.swim.on_datagram("y", sealed_gossip(key, "y",
                                        {upd(UpdateKind::kAlive, "y", 1, 9),
                                         upd(UpdateKind::kDead, "x", 1, 5),
                                         upd(UpdateKind::kDead, "m", 1, 6)},
                                        9, 1));
  REQUIRE(a.swim.member("m")->state == MemberState::kDead);
  for (int i = 0; i < 200 && a.swim.member("m"); ++i) a.advance(milliseconds(100));
  REQUIRE_FALSE(a.swim.member("m"));  // reaped
  REQUIRE_FALSE(a.swim.member("x"));
  CHECK(a.swim.graveyard_size() == 2);
  // The replay: x's window outlives x's membership.
  const uint64_t replays = a.swim.stats().dropped_replay;
  a.swim.on_stream("x", captured);
  CHECK(a.swim.stats().dropped_replay == replays + 1);
  CHECK_FALSE(a.swim.member("m"));
  // The same stale records relayed by a fresh sender are not newer than the deaths.
  a.swim.on_stream("z", sealed_push_pull(key, "z", {rec("z", 1, 3), rec("m", 1, 6), rec("x", 1, 5)}, 3, 1));
  CHECK_FALSE(a.swim.member("m"));
  CHECK_FALSE(a.swim.member("x"));
  CHECK(a.swim.stats().graveyard_rejections == 2);
  // A newer run of m, or m itself speaking, does come back.
  a.swim.on_stream("z", sealed_push_pull(key, "z", {rec("m", 1, 7)}, 3, 2));
  CHECK(a.swim.member("m"));
  a.swim.on_datagram("x", sealed_gossip(key, "x", {upd(UpdateKind::kAlive, "x", 1, 5)}, 5, 11));
  CHECK(a.swim.member("x"));
}

TEST_CASE("a stream frame overtaken by many datagrams is not a replay") {
  const auto key = test_key(22);
  Node a("a", key);
  // b's counter is shared by both channels: the frame got counter 1, datagrams 2..100.
  const auto frame = sealed_push_pull(key, "b", {rec("b", 1, 4)}, 4, 1);
  for (uint64_t c = 2; c <= 100; ++c)
    a.swim.on_datagram("b", sealed_gossip(key, "b", {}, 4, c));
  CHECK(a.swim.stats().dropped_replay == 0);
  a.swim.on_stream("b", frame);
  CHECK(a.swim.stats().dropped_replay == 0);
  CHECK(a.swim.member("b"));
  a.swim.on_stream("b", frame);  // its own replay still is one
  CHECK(a.swim.stats().dropped_replay == 1);
}

TEST_CASE("full push-pulls carry every live member but only the most recent tombstones") {
  const auto key = test_key(23);
  Config cfg = Config::lan();
  cfg.max_push_pull_tombstones = 16;
  Node a("a", key, cfg);
  std::vector<MemberInfo> all;
  for (int i = 0; i < 100; ++i) all.push_back(rec("m" + std::to_string(i), 1, 2));
  a.swim.TEST_install(all);
  uint64_t counter = 1;
  for (int i = 0; i < 60; ++i) {  // 60 deaths, one per 10 ms; m59 is the most recent
    a.swim.on_datagram("y", sealed_gossip(key, "y", {upd(UpdateKind::kDead, "m" + std::to_string(i), 1, 2)}, 9, counter++));
    a.advance(milliseconds(10));
  }
  std::vector<std::string> seeds{"s"};
  a.transport.sent.clear();
  a.swim.join(seeds);
  REQUIRE(a.transport.sent.size() == 1);
  Keyring ring(key);
  std::vector<uint8_t> plain(a.transport.sent[0].bytes.size());
  auto len = ring.open(a.transport.sent[0].bytes, kStreamAd, plain, nullptr);
  REQUIRE(len);
  PushPull p;
  REQUIRE(decode(std::span<const uint8_t>(plain.data(), *len), WireLimits{}, p));
  size_t live = 0, dead = 0;
  bool newest = false;
  for (const MemberInfo& m : p.members) {
    if (m.state == MemberState::kDead) {
      ++dead;
      newest |= m.name == "m59";
    } else {
      ++live;
    }
  }
  CHECK(live == 41);  // 40 live members and ourselves
  CHECK(dead == 16);
  CHECK(newest);
  CHECK(a.swim.stats().tombstones_trimmed == 44);
}

TEST_CASE("member table, replay senders and pending deadlines stay bounded") {
  const auto key = test_key(24);
  Config cfg = Config::lan();
  cfg.max_members = 50;
  Node a("a", key, cfg);
  a.swim.start();
  uint64_t counter = 1;
  // 100 distinct senders announce themselves: the table holds at most 50.
  for (int i = 0; i < 100; ++i) {
    const std::string n = "n" + std::to_string(i);
    a.swim.on_datagram(n, sealed_gossip(key, n, {upd(UpdateKind::kAlive, n, 1, 1)}, 1, 1));
  }
  CHECK(a.swim.table_size() == 50);
  CHECK(a.swim.stats().dropped_table_full == 51);
  CHECK(a.swim.replay_senders() <= 2 * 2 * cfg.max_members);
  // A tombstone makes room for a newcomer.
  a.swim.on_datagram("y", sealed_gossip(key, "y", {upd(UpdateKind::kDead, "n1", 1, 1)}, 9, counter++));
  a.swim.on_datagram("w", sealed_gossip(key, "w", {upd(UpdateKind::kAlive, "w", 1, 1)}, 1, 1));
  CHECK(a.swim.member("w"));
  CHECK_FALSE(a.swim.member("n1"));
  CHECK(a.swim.table_size() == 50);
  // Suspect / refute churn leaves superseded suspicion timers behind; they are compacted.
  for (uint64_t inc = 2; inc < 2000; inc += 2) {
    a.swim.on_datagram("y", sealed_gossip(key, "y",
                                          {upd(UpdateKind::kSuspect, "n2", inc - 1, 1),
                                           upd(UpdateKind::kAlive, "n2", inc, 1)},
                                          9, counter++));
  }
  CHECK(a.swim.pending_deadlines() <= 4 * 50 + 4 * 64 + 64 + 8);
  CHECK(a.swim.member("n2")->state == MemberState::kAlive);
}
