// Protocol flows on small simulated clusters, advancing virtual time by hand.
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

struct Seen {
  TimePoint t;
  uint32_t observer;
  EventKind kind;
  std::string subject;
  bool local;
};

struct Recorder {
  std::vector<Seen> log;
  void attach(Cluster& c) {
    c.set_observer([this, &c](uint32_t obs, const Event& e) {
      log.push_back({c.net().now(), obs, e.kind, e.member->name, e.local_origin});
    });
  }
  std::optional<Seen> first(EventKind k, const std::string& subject, int observer = -1) const {
    for (const Seen& s : log)
      if (s.kind == k && s.subject == subject && (observer < 0 || s.observer == static_cast<uint32_t>(observer)))
        return s;
    return std::nullopt;
  }
  size_t count(EventKind k) const {
    size_t n = 0;
    for (const Seen& s : log) n += s.kind == k;
    return n;
  }
};

ClusterOptions small(size_t n, uint64_t seed, bool lifeguard = true) {
  ClusterOptions o;
  o.nodes = n;
  o.seed = seed;
  o.config = Config::lan();
  o.config.lifeguard = lifeguard;
  return o;
}

}  // namespace

TEST_CASE("healthy members probe each other and never suspect") {
  Cluster c(small(5, 1));
  Recorder r;
  r.attach(c);
  c.start_all();
  c.run_for(seconds(30));
  for (uint32_t i = 0; i < 5; ++i) {
    CHECK(c.node(i).stats().probes >= 28);
    CHECK(c.node(i).stats().probe_failures == 0);
    CHECK(c.node(i).num_live() == 5);
  }
  CHECK(r.count(EventKind::kSuspect) == 0);
}

TEST_CASE("ping-req through a third member avoids suspecting a member behind a broken link") {
  Cluster c(small(3, 2));
  Recorder r;
  r.attach(c);
  LinkParams dead_link;
  dead_link.loss = 1.0;
  c.net().set_link(0, 2, dead_link);
  c.net().set_link(2, 0, dead_link);
  c.start_all();
  c.run_for(seconds(40));
  CHECK(c.node(0).stats().indirect_probes > 0);
  CHECK(c.node(0).stats().suspicions_raised == 0);
  CHECK(c.node(2).stats().suspicions_raised == 0);
  CHECK(r.count(EventKind::kDead) == 0);
}

TEST_CASE("a crashed member is suspected then declared dead after exactly the suspicion timeout") {
  Cluster c(small(3, 3, /*lifeguard=*/false));
  Recorder r;
  r.attach(c);
  c.start_all();
  c.run_for(seconds(5));
  const TimePoint crash = c.net().now();
  c.net().crash(2);
  // With 2 probers and round-robin over 2 targets, someone probes n2 within 2 periods, and the
  // probe fails at probe_timeout + indirect_timeout = 0.5 s.
  c.run_for(milliseconds(2600));
  auto s = r.first(EventKind::kSuspect, "n2");
  REQUIRE(s);
  CHECK(s->local);
  CHECK(s->t - crash <= milliseconds(2500));
  // Lifeguard off: timeout = 1.25 * max(1, log10 3) * 1 s = 1.25 s, no confirmations needed.
  const TimePoint expiry = s->t + milliseconds(1250);
  c.net().run_until(expiry - milliseconds(1));
  CHECK_FALSE(r.first(EventKind::kDead, "n2", static_cast<int>(s->observer)));
  c.net().run_until(expiry);
  auto d = r.first(EventKind::kDead, "n2", static_cast<int>(s->observer));
  REQUIRE(d);
  CHECK(d->t == expiry);
  c.run_for(seconds(2));
  CHECK(c.node(0).member("n2")->state == MemberState::kDead);
  CHECK(c.node(1).member("n2")->state == MemberState::kDead);
  CHECK(c.node(0).num_live() == 2);
}

TEST_CASE("a suspected member that is alive refutes with a higher incarnation") {
  Cluster c(small(4, 4));
  Recorder r;
  r.attach(c);
  c.start_all();
  c.run_for(seconds(3));
  c.net().set_partition({0, 0, 0, 1});  // isolate n3
  std::optional<Seen> s;
  for (int i = 0; i < 100 && !s; ++i) {
    c.run_for(milliseconds(50));
    s = r.first(EventKind::kSuspect, "n3");
  }
  REQUIRE(s);
  c.net().set_partition({});
  c.run_for(seconds(5));
  CHECK(c.node(3).incarnation() > 1);
  CHECK(c.node(3).stats().refutations >= 1);
  CHECK(r.first(EventKind::kAlive, "n3"));
  CHECK_FALSE(r.first(EventKind::kDead, "n3"));
  for (uint32_t i = 0; i < 3; ++i) CHECK(c.node(i).member("n3")->state == MemberState::kAlive);
}

TEST_CASE("relays nack when the target is gone and a healthy prober stays healthy") {
  Cluster c(small(6, 5));
  c.start_all();
  c.run_for(seconds(3));
  c.net().crash(5);
  c.run_for(seconds(6));
  uint64_t nacks = 0;
  for (uint32_t i = 0; i < 5; ++i) {
    nacks += c.node(i).stats().nacks_received;
    CHECK(c.node(i).health_score() == 0);  // expected nacks arrived: not our fault
  }
  CHECK(nacks > 0);
}

TEST_CASE("relay nacks beat the prober's deadline under 30 ms of link jitter") {
  // Issue 12 item 20: with nack_fraction 0.8 the LAN preset leaves 40 ms for the ping-req and the
  // nack to travel; jitter of up to 30 ms each way made nacks late, and every late nack counted
  // against the (healthy) prober's health. 0.6 leaves 80 ms.
  ClusterOptions o = small(6, 5);
  o.link.jitter = milliseconds(30);
  Cluster c(o);
  c.start_all();
  c.run_for(seconds(3));
  c.net().crash(5);
  c.run_for(seconds(20));
  uint64_t nacks = 0, inconclusive = 0;
  for (uint32_t i = 0; i < 5; ++i) {
    nacks += c.node(i).stats().nacks_received;
    inconclusive += c.node(i).stats().probes_inconclusive;
    INFO("n" << i);
    CHECK(c.node(i).health_score() == 0);
  }
  CHECK(nacks >= 20);
  CHECK(inconclusive == 0);
  CHECK(c.node(0).member("n5")->state == MemberState::kDead);
}

TEST_CASE("a member that hears nothing raises its own health score") {
  Cluster c(small(6, 6));
  Recorder r;
  r.attach(c);
  c.start_all();
  c.run_for(seconds(3));
  c.net().set_ingress_loss(0, 1.0);  // n0 sends fine but receives nothing: no acks, no nacks
  c.run_for(seconds(4));
  CHECK(c.node(0).health_score() > 0);
  CHECK(c.node(1).health_score() == 0);
  // Without a single nack it cannot tell a dead target from its own deafness: the first silent
  // probe accuses nobody; later ones do (inconclusive_probe_limit), but quietly: n0's view loses
  // members, nobody else's does (the others do, rightly, declare the deaf n0 dead: it cannot
  // hear their pings).
  CHECK(c.node(0).stats().probes_inconclusive >= 1);
  c.run_for(seconds(20));
  CHECK(c.node(0).stats().quiet_suspicions > 0);
  // (Simulated streams ignore ingress loss, so n0's push/pulls still get through now and then;
  // each one ends its quiet suspicions, and the views of n0 go back and forth.)
  for (uint32_t i = 1; i < 6; ++i) {
    INFO("n" << i);
    CHECK(c.node(i).num_live() >= 5);
  }
  for (const Seen& s : r.log) {
    INFO("t=" << s.t.count() << " observer n" << s.observer << " " << to_string(s.kind) << " " << s.subject << " local " << s.local);
    CHECK_FALSE((s.observer != 0 && s.subject != "n0" && s.kind == EventKind::kDead));
  }
  // Its hearing comes back: quiet deaths are undone as it hears from each member, and it
  // refutes its own death, so every view is whole again.
  c.net().set_ingress_loss(0, 0.0);
  for (int i = 0; i < 300 && c.count_seeing(6) < 6; ++i) c.run_for(milliseconds(100));
  CHECK(c.count_seeing(6) == 6);
}

TEST_CASE("graceful leave is reported as leave everywhere, never as death") {
  Cluster c(small(5, 7));
  Recorder r;
  r.attach(c);
  c.start_all();
  c.run_for(seconds(3));
  c.node(4).leave();
  c.run_for(seconds(2));
  CHECK(c.node(4).leave_done());
  c.net().crash(4);  // the process exits after leave_done()
  c.run_for(seconds(10));
  for (uint32_t i = 0; i < 4; ++i) {
    CHECK(c.node(i).member("n4")->state == MemberState::kLeft);
    CHECK(c.node(i).num_live() == 4);
  }
  CHECK_FALSE(r.first(EventKind::kDead, "n4"));
  CHECK_FALSE(r.first(EventKind::kSuspect, "n4"));
}

TEST_CASE("metadata updates reach every member with monotonically increasing view epochs") {
  Cluster c(small(20, 8));
  std::vector<uint64_t> last_epoch(20, 0);
  bool monotonic = true;
  size_t updates = 0;
  for (uint32_t i = 0; i < 20; ++i) last_epoch[i] = c.node(i).view_epoch();  // after installs
  c.set_observer([&](uint32_t obs, const Event& e) {
    monotonic = monotonic && e.view_epoch == last_epoch[obs] + 1;
    last_epoch[obs] = e.view_epoch;
    if (e.kind == EventKind::kUpdate && e.member->name == "n7" && e.member->meta.zone == "moved") ++updates;
  });
  c.start_all();
  c.run_for(seconds(2));
  Meta m;
  m.zone = "moved";
  m.rpc_addr = "10.0.0.7:9000";
  REQUIRE(c.node(7).set_meta(m));
  c.run_for(seconds(5));
  CHECK(updates == 20);  // 19 peers plus n7's own update event
  CHECK(monotonic);
  CHECK(c.node(3).member("n7")->meta.rpc_addr == "10.0.0.7:9000");
  Meta huge;
  huge.zone.assign(1000, 'z');
  CHECK_FALSE(c.node(7).set_meta(huge));
}

TEST_CASE("push-pull never revives a dead member without a newer incarnation") {
  const auto key = test_key(9);
  Node a("a", key);
  a.swim.start();
  Keyring peer_ring(key);
  uint64_t counter = 0;
  auto push = [&](uint64_t inc, MemberState st) {
    PushPull p;
    p.from = "b";
    p.from_addr = "b";
    p.kind = SyncKind::kFull;
    p.members.push_back(MemberInfo{"b", "b", 1, MemberState::kAlive, Meta{}});
    p.members.push_back(MemberInfo{"x", "x", inc, st, Meta{}});
    std::vector<uint8_t> plain;
    encode(p, plain);
    auto sealed = seal_as_peer(peer_ring, plain, kStreamAd, ++counter);
    a.swim.on_stream("b", sealed);
  };
  push(3, MemberState::kAlive);
  REQUIRE(a.swim.member("x")->state == MemberState::kAlive);
  push(3, MemberState::kDead);  // a remote death is only a suspicion here
  REQUIRE(a.swim.member("x")->state == MemberState::kSuspect);
  a.advance(seconds(60));  // suspicion expires (nobody refutes)
  REQUIRE(a.swim.member("x")->state == MemberState::kDead);
  push(3, MemberState::kAlive);
  CHECK(a.swim.member("x")->state == MemberState::kDead);
  push(2, MemberState::kAlive);
  CHECK(a.swim.member("x")->state == MemberState::kDead);
  push(4, MemberState::kAlive);
  CHECK(a.swim.member("x")->state == MemberState::kAlive);
  CHECK(a.sink.count(EventKind::kJoin, "x") == 2);
}

TEST_CASE("simulation runs are reproducible for a seed") {
  auto run = [](uint64_t seed) {
    ClusterOptions o = small(20, seed);
    o.link.loss = 0.05;
    Cluster c(o);
    c.start_all();
    c.run_for(seconds(60));
    uint64_t sum = 0;
    for (uint32_t i = 0; i < 20; ++i)
      sum = sum * 31 + c.node(i).stats().datagrams_sent * 7 + c.node(i).stats().indirect_probes;
    return sum;
  };
  CHECK(run(11) == run(11));
  CHECK(run(11) != run(12));
}

namespace {
Datagram open_datagram(const Keyring& ring, const std::vector<uint8_t>& sealed) {
  std::vector<uint8_t> plain(sealed.size());
  auto n = ring.open(sealed, kDatagramAd, plain, nullptr);
  REQUIRE(n);
  Datagram d;
  REQUIRE(decode(std::span<const uint8_t>(plain.data(), *n), WireLimits{}, d));
  return d;
}
}  // namespace

TEST_CASE("probe cycle by hand ping then retry then ping-req then nack then suspect") {
  const auto key = test_key(4);
  Node a("a", key);
  a.swim.TEST_install({MemberInfo{"b", "b", 1, MemberState::kAlive, Meta{}},
                       MemberInfo{"c", "c", 1, MemberState::kAlive, Meta{}}});
  a.swim.start();
  // First probe: somewhere in the first period (random phase).
  for (int i = 0; i < 100 && a.transport.sent.empty(); ++i) a.advance(milliseconds(10));
  REQUIRE(a.transport.sent.size() == 1);
  const std::string target = a.transport.sent[0].to;
  const std::string helper = target == "b" ? "c" : "b";
  Datagram ping = open_datagram(a.ring, a.transport.sent[0].bytes);
  CHECK(ping.kind == MsgKind::kPing);
  CHECK(ping.target == target);
  a.transport.sent.clear();

  a.advance(milliseconds(199));  // just before probe_timeout: nothing
  CHECK(a.transport.sent.empty());
  a.advance(milliseconds(1));  // probe_timeout: exactly one retried ping, same seq
  REQUIRE(a.transport.sent.size() == 1);
  CHECK(a.transport.sent[0].to == target);
  CHECK(open_datagram(a.ring, a.transport.sent[0].bytes).seq == ping.seq);
  a.transport.sent.clear();

  a.advance(milliseconds(100));  // retry_timeout: ping-req to the only possible helper
  REQUIRE(a.transport.sent.size() == 1);
  CHECK(a.transport.sent[0].to == helper);
  Datagram req = open_datagram(a.ring, a.transport.sent[0].bytes);
  CHECK(req.kind == MsgKind::kPingReq);
  CHECK(req.target == target);
  CHECK(req.want_nack);

  // The helper answers with a nack: the helper is reachable, the target is not.
  Datagram nack;
  nack.from = helper;
  nack.kind = MsgKind::kNack;
  nack.seq = req.seq;
  std::vector<uint8_t> plain;
  encode(nack, plain);
  Keyring helper_ring(key);
  a.swim.on_datagram(helper, seal_as_peer(helper_ring, plain, kDatagramAd, 1));
  CHECK(a.swim.stats().nacks_received == 1);

  a.advance(milliseconds(199));  // deadline is at probe start + 500 ms
  CHECK(a.sink.count(EventKind::kSuspect, target) == 0);
  a.advance(milliseconds(1));
  CHECK(a.sink.count(EventKind::kSuspect, target) == 1);
  CHECK(a.swim.member(target)->state == MemberState::kSuspect);
  CHECK(a.swim.health_score() == 0);  // the expected nack arrived
}

TEST_CASE("a probe answered by neither ack nor nack accuses nobody, the next silent one does") {
  Node a("a", test_key(4));
  a.swim.TEST_install({MemberInfo{"b", "b", 1, MemberState::kAlive, Meta{}},
                       MemberInfo{"c", "c", 1, MemberState::kAlive, Meta{}}});
  a.swim.start();
  a.advance(seconds(1) - milliseconds(1));  // the first probe has started by now
  a.advance(milliseconds(600));             // and its deadline has passed
  CHECK(a.swim.stats().probes == 1);
  CHECK(a.swim.stats().probes_inconclusive == 1);
  CHECK(a.swim.stats().suspicions_raised == 0);
  CHECK(a.swim.health_score() >= 1);
  // Nobody ever answers: the second silent probe in a row suspects its target (memberlist).
  for (int i = 0; i < 40 && a.swim.stats().probes < 2; ++i) a.advance(milliseconds(100));
  for (int i = 0; i < 40 && a.swim.stats().suspicions_raised == 0; ++i) a.advance(milliseconds(100));
  CHECK(a.swim.stats().probes_inconclusive == 1);
  CHECK(a.swim.stats().suspicions_raised == 1);
}

TEST_CASE("successor probing bounds the time from crash to first suspicion") {
  // Returns the worst crash-to-first-suspicion time over 20 crashes in a 60-member cluster.
  auto worst_first_suspicion = [](uint32_t successor_every) {
    ClusterOptions o = small(60, 9);
    o.config.successor_probe_every = successor_every;
    Cluster c(o);
    Recorder r;
    r.attach(c);
    c.start_all();
    c.run_for(seconds(5));
    Rng pick(99);
    Duration worst{0};
    for (int trial = 0; trial < 20; ++trial) {
      c.run_for(Duration(static_cast<int64_t>(pick.uniform(1000000))));
      const uint32_t victim = static_cast<uint32_t>(1 + trial * 2);
      const std::string name = Cluster::name_of(victim);
      const TimePoint crash = c.net().now();
      c.net().crash(victim);
      c.run_for(seconds(15));
      auto s = r.first(EventKind::kSuspect, name);
      INFO("victim " << name);
      REQUIRE(s);
      CHECK(r.first(EventKind::kDead, name));
      worst = std::max(worst, s->t - crash);
    }
    return worst;
  };
  // Its ring predecessor probes it every 2nd period; the probe fails 0.5 s later.
  const Duration with_ring = worst_first_suspicion(2);
  CHECK(with_ring <= milliseconds(2510));
  // The same crashes with pure round-robin (the ring switched off) miss that bound: the ring is
  // what makes it hold, not the cluster size or luck (issue 12 item 27).
  const Duration round_robin = worst_first_suspicion(0);
  INFO("ring " << with_ring.count() << " us, round-robin " << round_robin.count() << " us");
  CHECK(round_robin > milliseconds(2510));
}
