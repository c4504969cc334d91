// Member life cycle across runs and self-health (issue 11 §2, issue 12 item 19):
// restarts are new members, a node hears its own accusations, survivors of a 2-of-3 crash
// declare both dead, incarnations never wrap.
#include <catch2/catch.hpp>

#include <optional>

#include "harness.h"
#include "membership/sim/cluster.h"

using namespace dog::membership;
using namespace dog::membership::sim;
using namespace dog::membership::test;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// Seals and delivers a gossip datagram from `from` carrying `updates` to `to`.
void gossip_to(Node& to, const std::string& from, const Keyring::Key& key, uint64_t session,
               uint64_t counter, std::vector<Update> updates) {
  Datagram d;
  d.from = from;
  d.kind = MsgKind::kGossip;
  d.updates = std::move(updates);
  std::vector<uint8_t> plain;
  encode(d, plain);
  Keyring ring(key);
  to.swim.on_datagram(from, seal_as_peer(ring, plain, kDatagramAd, counter, session));
}

Update alive(const std::string& node, uint64_t inc, uint64_t session, uint32_t load = 0) {
  Update u;
  u.kind = UpdateKind::kAlive;
  u.node = node;
  u.addr = node;
  u.incarnation = inc;
  u.session = session;
  u.meta.load = load;
  return u;
}

Update accuse(UpdateKind k, const std::string& node, uint64_t inc, uint64_t session) {
  Update u;
  u.kind = k;
  u.node = node;
  u.incarnation = inc;
  u.session = session;
  u.from = "x";
  return u;
}

struct SelfLog {
  std::vector<std::pair<MemberState, uint64_t>> seen;
};

struct SelfSink : RecordingSink {
  SelfLog log;
  void on_self_state(MemberState s, uint64_t inc) override { log.seen.emplace_back(s, inc); }
};

}  // namespace

TEST_CASE("a member that comes back with a higher session is a new member") {
  const auto key = test_key(9);
  Node a("a", key);
  gossip_to(a, "b", key, 100, 1, {alive("b", 1, 100)});
  REQUIRE(a.swim.member("b"));
  CHECK(a.swim.member("b")->session == 100);
  a.sink.events.clear();
  // Same session, higher incarnation: the same member (no events without a change).
  gossip_to(a, "b", key, 100, 2, {alive("b", 5, 100)});
  CHECK(a.sink.events.empty());
  // b restarts: new session, incarnation back at 1. Reported as dead (old run) then join.
  gossip_to(a, "b", key, 200, 1, {alive("b", 1, 200, /*load=*/7)});
  REQUIRE(a.sink.events.size() == 2);
  CHECK(a.sink.events[0] == std::pair{EventKind::kDead, std::string("b")});
  CHECK(a.sink.events[1] == std::pair{EventKind::kJoin, std::string("b")});
  CHECK(a.swim.member("b")->session == 200);
  CHECK(a.swim.member("b")->incarnation == 1);
  CHECK(a.swim.member("b")->meta.load == 7);
  CHECK(a.swim.num_live() == 2);
  CHECK(a.swim.stats().restarts_seen == 1);
  // Anything about the old run, however high its incarnation, is stale now.
  gossip_to(a, "c", key, 1, 1,
            {alive("b", 99, 100), accuse(UpdateKind::kSuspect, "b", 50, 100),
             accuse(UpdateKind::kDead, "b", 50, 100)});
  CHECK(a.sink.events.size() == 2);
  CHECK(a.swim.member("b")->state == MemberState::kAlive);
  CHECK(a.swim.member("b")->session == 200);
  CHECK(a.swim.stats().stale_session_updates == 3);
  // A restart of a member we hold dead is one join.
  gossip_to(a, "c", key, 1, 2, {accuse(UpdateKind::kDead, "b", 1, 200)});
  CHECK(a.swim.member("b")->state == MemberState::kDead);
  a.sink.events.clear();
  gossip_to(a, "b", key, 300, 1, {alive("b", 1, 300)});
  REQUIRE(a.sink.events.size() == 1);
  CHECK(a.sink.events[0] == std::pair{EventKind::kJoin, std::string("b")});
}

TEST_CASE("a node hears its own suspicion and death, and of its refutation") {
  const auto key = test_key(10);
  Config cfg = Config::lan();
  cfg.session_id = 500;
  ManualClock clock;
  ManualTimer timer;
  CaptureTransport tr;
  SelfSink sink;
  Keyring ring(key);
  Swim me(cfg, Identity{"me", "me", Meta{}}, ring, clock, timer, tr, 1, &sink);
  auto send = [&](uint64_t counter, std::vector<Update> ups) {
    Datagram d;
    d.from = "p";
    d.kind = MsgKind::kGossip;
    d.updates = std::move(ups);
    std::vector<uint8_t> plain;
    encode(d, plain);
    me.on_datagram("p", seal_as_peer(ring, plain, kDatagramAd, counter, 7));
  };
  send(1, {accuse(UpdateKind::kSuspect, "me", 1, 500)});
  REQUIRE(sink.log.seen.size() == 2);
  CHECK(sink.log.seen[0] == std::pair{MemberState::kSuspect, uint64_t{1}});
  CHECK(sink.log.seen[1] == std::pair{MemberState::kAlive, uint64_t{2}});
  send(2, {accuse(UpdateKind::kDead, "me", 2, 500)});
  REQUIRE(sink.log.seen.size() == 4);
  CHECK(sink.log.seen[2] == std::pair{MemberState::kDead, uint64_t{2}});
  CHECK(sink.log.seen[3] == std::pair{MemberState::kAlive, uint64_t{3}});
  // Old news (below our incarnation) and accusations of a previous run are not about us.
  send(3, {accuse(UpdateKind::kDead, "me", 2, 500), accuse(UpdateKind::kDead, "me", 9, 499)});
  CHECK(sink.log.seen.size() == 4);
  CHECK(me.incarnation() == 3);
}

TEST_CASE("incarnations never wrap: absurd ones are dropped, refutation saturates") {
  const auto key = test_key(11);
  Node a("a", key);
  gossip_to(a, "p", key, 1, 1, {accuse(UpdateKind::kSuspect, "a", UINT64_MAX, 1)});
  CHECK(a.swim.incarnation() == 1);
  CHECK(a.swim.stats().bad_incarnations == 1);
  gossip_to(a, "p", key, 1, 2, {accuse(UpdateKind::kSuspect, "a", kMaxIncarnation - 1, 1)});
  CHECK(a.swim.incarnation() == kMaxIncarnation);  // outbid, not wrapped to 0
  gossip_to(a, "p", key, 1, 3, {alive("q", UINT64_MAX, 1)});
  CHECK_FALSE(a.swim.member("q"));
  Config bad = Config::lan();
  bad.session_id = 0;
  CHECK(bad.validate());
}

TEST_CASE("a member that was declared dead hears it and rejoins by refuting") {
  ClusterOptions o;
  o.nodes = 5;
  o.seed = 21;
  Cluster c(o);
  std::vector<std::pair<MemberState, uint64_t>> self4;
  c.set_self_observer([&](uint32_t id, MemberState s, uint64_t inc) {
    if (id == 4) self4.emplace_back(s, inc);
  });
  c.start_all();
  c.run_for(seconds(3));
  c.net().set_ingress_loss(4, 1.0);  // n4 hears nothing: the others cannot reach it
  for (int i = 0; i < 600 && c.node(0).member("n4")->state != MemberState::kDead; ++i)
    c.run_for(milliseconds(100));
  REQUIRE(c.node(0).member("n4")->state == MemberState::kDead);
  CHECK(self4.empty());  // it has heard nothing yet
  c.net().set_ingress_loss(4, 0.0);
  for (int i = 0; i < 600 && c.count_seeing(5) < 5; ++i) c.run_for(milliseconds(100));
  CHECK(c.count_seeing(5) == 5);
  REQUIRE(self4.size() >= 2);
  bool heard_dead = false;
  for (auto& [s, inc] : self4) heard_dead |= s == MemberState::kDead;
  CHECK(heard_dead);
  CHECK(self4.back().first == MemberState::kAlive);
  CHECK(self4.back().second == c.node(4).incarnation());
}

TEST_CASE("the survivor of a three member cluster declares both others dead when they crash") {
  for (uint64_t seed : {31, 32, 33, 34, 35}) {
    ClusterOptions o;
    o.nodes = 3;
    o.seed = seed;
    Cluster c(o);
    std::optional<TimePoint> dead1, dead2;
    c.set_observer([&](uint32_t obs, const Event& e) {
      if (obs != 0 || e.kind != EventKind::kDead) return;
      if (e.member->name == "n1") dead1 = c.net().now();
      if (e.member->name == "n2") dead2 = c.net().now();
    });
    c.start_all();
    c.run_for(seconds(5));
    const TimePoint crash = c.net().now();
    c.net().crash(1);
    c.net().crash(2);
    // Bound from the configuration: the health score rises by one per silent probe, so the
    // first silent probe (ends <= 2 T after the crash, successor probing) is followed by
    // suspecting probes at most (1+1)T, (1+2)T, (1+3)T apart (and one more, as health scaling
    // also stretches the round-robin). Neither suspicion can be confirmed by anyone, so it runs
    // for the minimum: a quiet one is never gossiped, and once one member is dead the last probe
    // has no relays at all (k = 0).
    const Config& cfg = c.node(0).config();
    const Duration min_susp = suspicion_timeout_min(cfg.suspicion_mult, 3, cfg.probe_interval);
    const Duration bound = cfg.probe_interval * (2 + 2 + 3 + 4 + 5) + min_susp;
    c.run_for(bound + seconds(1));
    INFO("seed " << seed);
    REQUIRE(dead1);
    REQUIRE(dead2);
    CHECK(*dead1 - crash <= bound);
    CHECK(*dead2 - crash <= bound);
    CHECK(c.node(0).num_live() == 1);
  }
}

TEST_CASE("a joiner that no seed has answered keeps retrying the seeds with back-off") {
  const auto key = test_key(12);
  Node a("a", key);  // LAN: first back-off exchange 1 s after join, gaps doubling to 8 s
  a.swim.start();
  std::vector<std::string> seeds{"s"};
  a.swim.join(seeds);
  // Full-state join exchanges sent to the seed so far.
  auto to_seed = [&] {
    size_t n = 0;
    Keyring ring(key);
    for (const auto& pkt : a.transport.sent) {
      if (!pkt.stream || pkt.to != "s") continue;
      std::vector<uint8_t> plain(pkt.bytes.size());
      auto len = ring.open(pkt.bytes, kStreamAd, plain, nullptr);
      PushPull pp;
      if (len && decode(std::span<const uint8_t>(plain.data(), *len), WireLimits{}, pp) && pp.join) ++n;
    }
    return n;
  };
  CHECK(to_seed() == 1);
  for (int i = 0; i < 320; ++i) a.advance(milliseconds(100));  // 32 s: exchanges at 1, 3, 7, 15, 23, 31 s
  CHECK(to_seed() == 7);
  // The seed answers: the chain ends as it would have after a successful join.
  std::vector<uint8_t> plain;
  PushPull p;
  p.from = "s";
  p.from_addr = "s";
  p.kind = SyncKind::kFull;
  p.members = {MemberInfo{"s", "s", 1, MemberState::kAlive, Meta{}}};
  encode(p, plain);
  Keyring ring(key);
  a.swim.on_stream("s", seal_as_peer(ring, plain, kStreamAd, 1, 3));
  REQUIRE(a.swim.num_live() == 2);
  const size_t answered = to_seed();
  // From now on s answers every ping, so it stays alive (and a is not alone again).
  size_t seen = a.transport.sent.size();
  uint64_t counter = 2;
  for (int i = 0; i < 300; ++i) {
    a.advance(milliseconds(100));
    for (; seen < a.transport.sent.size(); ++seen) {
      const auto pkt = a.transport.sent[seen];
      if (pkt.stream || pkt.to != "s") continue;
      std::vector<uint8_t> open(pkt.bytes.size());
      auto len = ring.open(pkt.bytes, kDatagramAd, open, nullptr);
      Datagram d;
      if (!len || !decode(std::span<const uint8_t>(open.data(), *len), WireLimits{}, d) ||
          d.kind != MsgKind::kPing)
        continue;
      Datagram ack;
      ack.from = "s";
      ack.kind = MsgKind::kAck;
      ack.seq = d.seq;
      std::vector<uint8_t> ack_plain;
      encode(ack, ack_plain);
      a.swim.on_datagram("s", seal_as_peer(ring, ack_plain, kDatagramAd, counter++, 3));
    }
  }
  CHECK(a.swim.member("s")->state == MemberState::kAlive);
  CHECK(to_seed() == answered);  // digests to known members from now on, no more joins
}
