// Cluster (node/cluster/cluster.h) on real loopback sockets, several nodes in one process on
// one loop: join, the routing view, load in metadata, RPC on the SWIM port, leave, start errors.
#include <catch2/catch.hpp>

#include <asio/ip/udp.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "node/cluster/cluster.h"
#include "node/cluster/join.h"
#include "node/swim/swim_host.h"
#include "rpc/calls.h"
#include "tests/rpc/test_host.h"

using namespace dog::node;
using namespace dog::node::cluster;
using Kind = ClusterError::Kind;

namespace {

// Polls `done` while the loop runs; a generous bound, not a timing assertion.
bool wait_until(Loop& loop, const std::function<bool()>& done, int seconds = 30) {
  for (int i = 0; i < seconds * 100; ++i) {
    if (done()) return true;
    loop.timer().afterDelay(10 * kj::MILLISECONDS).wait(loop.wait_scope());
  }
  return done();
}

std::string key_file(const std::string& keys) {
  static int n = 0;
  auto p = std::filesystem::temp_directory_path() /
           ("dog-cluster-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
  std::ofstream(p) << keys;
  return p.string();
}

struct Recorder : Listener {
  std::vector<std::pair<std::string, uint64_t>> gone;
  int view_changes = 0;
  std::vector<bool> health;
  void on_view_change() override { ++view_changes; }
  void on_self_health(bool serving) override { health.push_back(serving); }
  void on_node_gone(const std::string& node, uint64_t session) override {
    gone.emplace_back(node, session);
  }
};

struct TestNode {
  TestNode(Loop& loop, const std::string& name, const std::string& key_path,
           std::vector<std::string> join = {}, std::string bind = "127.0.0.1:0") {
    state.name = name;
    ClusterOptions o;
    o.bind = bind;
    o.name = name;
    o.preset = "local";
    o.key_file = key_path;
    o.join = std::move(join);
    o.join_timeout = std::chrono::seconds(20);
    cluster = std::make_unique<Cluster>(loop, o, dog::rpc::testing::make_test_node(state, loop.timer()),
                                        &recorder);
    cluster->start();
  }
  dog::rpc::testing::HostState state;
  Recorder recorder;
  std::unique_ptr<Cluster> cluster;
};

dog::routing::ObjectId id_of(int i) {
  return dog::routing::id_from_name("Room", "room-" + std::to_string(i));
}

}  // namespace

TEST_CASE("cluster: three nodes join one seed and agree on members and owners", "[cluster]") {
  Loop loop;
  auto key = key_file(generate_key() + "\n");
  TestNode a(loop, "a", key);
  a.cluster->joined().wait(loop.wait_scope());  // no seeds: at once
  TestNode b(loop, "b", key, {a.cluster->address()});
  TestNode c(loop, "c", key, {a.cluster->address()});
  b.cluster->joined().wait(loop.wait_scope());
  c.cluster->joined().wait(loop.wait_scope());
  const std::vector<std::string> all{"a", "b", "c"};
  REQUIRE(wait_until(loop, [&] {
    return a.cluster->members() == all && b.cluster->members() == all &&
           c.cluster->members() == all;
  }));
  CHECK(a.recorder.view_changes >= 1);
  CHECK(a.cluster->table().member_count() == 3);
  CHECK(b.cluster->session_of("a") == a.cluster->session());
  CHECK(c.cluster->session_of("b") == b.cluster->session());
  CHECK_FALSE(a.cluster->session_of("nobody"));
  std::map<std::string, int> owners;
  for (int i = 0; i < 300; ++i) {
    const auto o = a.cluster->owner(id_of(i));
    CHECK(b.cluster->owner(id_of(i)) == o);
    CHECK(c.cluster->owner(id_of(i)) == o);
    ++owners[o];
  }
  CHECK(owners.size() == 3);  // every node owns some of 300 ids
}

TEST_CASE("cluster: published load reaches the peers' metadata", "[cluster]") {
  Loop loop;
  auto key = key_file(generate_key() + "\n");
  TestNode a(loop, "a", key);
  TestNode b(loop, "b", key, {a.cluster->address()});
  b.cluster->joined().wait(loop.wait_scope());
  a.cluster->publish_load(7);
  a.cluster->publish_load(9);  // within the rate limit: published with the next slot
  CHECK(a.cluster->load_of("a") == 7);
  REQUIRE(wait_until(loop, [&] { return b.cluster->load_of("a") == 9; }));
  CHECK(a.cluster->load_of("a") == 9);
}

TEST_CASE("cluster: RPC shares the cluster port (peers dial the advertised address)", "[cluster]") {
  Loop loop;
  auto key = key_file(generate_key() + "\n");
  TestNode a(loop, "a", key);
  TestNode b(loop, "b", key, {a.cluster->address()});
  b.cluster->joined().wait(loop.wait_scope());
  REQUIRE(wait_until(loop, [&] { return a.cluster->is_member("b") && b.cluster->is_member("a"); }));
  dog::rpc::Target t;
  t.ns = "Room";
  auto ab = dog::rpc::gossip(a.cluster->rpc(), {"b"}, t, "t", "hi", 5 * kj::SECONDS)
                .wait(loop.wait_scope());
  REQUIRE(ab.size() == 1);
  CHECK(ab[0].ok);
  CHECK(ab[0].reply == "b:hi");
  auto ba = dog::rpc::gossip(b.cluster->rpc(), {"a"}, t, "t", "yo", 5 * kj::SECONDS)
                .wait(loop.wait_scope());
  CHECK(ba[0].ok);
  CHECK(ba[0].reply == "a:yo");
}

TEST_CASE("cluster: a leaving node is reported gone with its session", "[cluster]") {
  Loop loop;
  auto key = key_file(generate_key() + "\n");
  TestNode a(loop, "a", key);
  TestNode b(loop, "b", key, {a.cluster->address()});
  b.cluster->joined().wait(loop.wait_scope());
  REQUIRE(wait_until(loop, [&] { return a.cluster->members().size() == 2; }));
  const uint64_t bs = b.cluster->session();
  bool left = false, left_too = false;
  b.cluster->leave(std::chrono::seconds(5), [&] { left = true; });
  b.cluster->leave(std::chrono::seconds(5), [&] { left_too = true; });  // both callers are told
  REQUIRE(wait_until(loop, [&] { return left && left_too; }));
  REQUIRE(wait_until(loop, [&] { return !a.recorder.gone.empty(); }));
  CHECK(a.recorder.gone.front() == std::make_pair(std::string("b"), bs));
  CHECK(a.cluster->members() == std::vector<std::string>{"a"});
  CHECK(a.cluster->owner(id_of(1)) == "a");
}

TEST_CASE("cluster: start-up errors are typed, one line each", "[cluster]") {
  Loop loop;
  auto good = key_file(generate_key() + "\n");
  auto start_error = [&](ClusterOptions o) {
    Cluster c(loop, o, dog::rpc::wire::Node::Client(nullptr), nullptr);
    try {
      c.start();
    } catch (const ClusterError& e) {
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
      return e.kind();
    }
    return Kind::kOther;
  };
  asio::ip::udp::socket taken(loop.io(), asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  ClusterOptions o;
  o.key_file = good;
  o.bind = "127.0.0.1:" + std::to_string(taken.local_endpoint().port());
  CHECK(start_error(o) == Kind::kCannotBind);
  o.bind = "0.0.0.0:7999";
  CHECK(start_error(o) == Kind::kBadOption);  // every interface, nothing to advertise
  o.bind = "nonsense";
  CHECK(start_error(o) == Kind::kBadOption);
  o.bind = "127.0.0.1:0";
  o.name = "n";
  o.key_file = key_file("garbage!\n");
  CHECK(start_error(o) == Kind::kKeyNotBase64);
  o.key_file = "/nonexistent/key";
  CHECK(start_error(o) == Kind::kKeyUnreadable);
}

TEST_CASE("cluster: a seed that never answers rejects joined() after the timeout", "[cluster]") {
  Loop loop;
  ClusterOptions o;
  o.bind = "127.0.0.1:0";
  o.name = "lonely";
  o.preset = "local";
  o.key_file = key_file(generate_key() + "\n");
  // A bound UDP/TCP port nobody reads: SWIM packets vanish.
  asio::ip::udp::socket silent(loop.io(), asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  o.join = {"127.0.0.1:" + std::to_string(silent.local_endpoint().port())};
  o.join_timeout = std::chrono::milliseconds(800);
  Cluster c(loop, o, dog::rpc::wire::Node::Client(nullptr), nullptr);
  c.start();
  bool rejected = false;
  c.joined().then([] {}, [&](kj::Exception&&) { rejected = true; }).wait(loop.wait_scope());
  CHECK(rejected);
  CHECK(c.members() == std::vector<std::string>{"lonely"});
}

TEST_CASE("cluster: a seed list naming only this node starts a cluster", "[cluster]") {
  Loop loop;
  ClusterOptions o;
  o.bind = "127.0.0.1:0";
  o.name = "self";
  o.key_file = key_file(generate_key() + "\n");
  Cluster c(loop, o, dog::rpc::wire::Node::Client(nullptr), nullptr);
  c.start();
  Joiner probe(loop.io(), {c.address()}, std::chrono::seconds(1), {c.address()},
               [](std::span<const std::string>) { FAIL("sent a join to itself"); },
               [] { return false; });
  probe.start();
  CHECK(probe.finished());
  probe.done().wait(loop.wait_scope());
}

TEST_CASE("cluster: a restart under the same name and address is a new member", "[cluster]") {
  Loop loop;
  auto key = key_file(generate_key() + "\n");
  TestNode a(loop, "a", key);
  auto b = std::make_unique<TestNode>(loop, "b", key, std::vector<std::string>{a.cluster->address()});
  b->cluster->joined().wait(loop.wait_scope());
  REQUIRE(wait_until(loop, [&] { return a.cluster->is_member("b"); }));
  const std::string b_addr = b->cluster->address();
  const uint64_t old_session = b->cluster->session();
  b.reset();  // a crash: no leave
  // The same name on the same port, as a restarted process would be.
  TestNode b2(loop, "b", key, {a.cluster->address()}, b_addr);
  REQUIRE(b2.cluster->address() == b_addr);
  b2.cluster->joined().wait(loop.wait_scope());
  REQUIRE(b2.cluster->session() > old_session);
  REQUIRE(wait_until(loop, [&] { return a.cluster->session_of("b") == b2.cluster->session(); }));
  REQUIRE_FALSE(a.recorder.gone.empty());
  CHECK(a.recorder.gone.front() == std::make_pair(std::string("b"), old_session));
  CHECK(a.cluster->is_member("b"));
}

TEST_CASE("cluster: a node declared dead hears it, refutes, and serves again", "[cluster]") {
  Loop loop;
  auto key = key_file(generate_key() + "\n");
  TestNode a(loop, "a", key);
  TestNode b(loop, "b", key, {a.cluster->address()});
  TestNode c(loop, "c", key, {a.cluster->address()});
  c.cluster->joined().wait(loop.wait_scope());
  REQUIRE(wait_until(loop, [&] { return a.cluster->members().size() == 3 && b.cluster->members().size() == 3; }));
  // c goes deaf and mute (a crashed process that still holds its ports) until its peers give up.
  c.cluster->swim_host().transport().set_silent(true);
  REQUIRE(wait_until(loop, [&] { return !a.cluster->is_member("c") && !b.cluster->is_member("c"); }, 60));
  CHECK(c.recorder.health.empty());  // nobody could tell c yet
  c.cluster->swim_host().transport().set_silent(false);
  REQUIRE(wait_until(loop, [&] { return c.recorder.health == std::vector<bool>{false, true}; }, 60));
  REQUIRE(wait_until(loop, [&] { return a.cluster->is_member("c") && b.cluster->is_member("c"); }, 60));
}

TEST_CASE("cluster: --advertise is what peers dial, and the default name", "[cluster]") {
  Loop loop;
  auto key = key_file(generate_key() + "\n");
  uint16_t port = 0;
  {  // a port free for UDP (TCP is checked by the bind itself)
    asio::ip::udp::socket probe(loop.io(), asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }
  ClusterOptions o;
  o.bind = "0.0.0.0:" + std::to_string(port);  // every interface: needs --advertise
  o.advertise = "127.0.0.1:" + std::to_string(port);
  o.preset = "local";
  o.key_file = key;
  dog::rpc::testing::HostState state;
  state.name = o.advertise;
  Recorder rec;
  Cluster a(loop, o, dog::rpc::testing::make_test_node(state, loop.timer()), &rec);
  a.start();
  CHECK(a.self() == o.advertise);  // no --name: the advertised address
  CHECK(a.address() == o.advertise);
  TestNode b(loop, "b", key, {o.advertise});
  b.cluster->joined().wait(loop.wait_scope());
  REQUIRE(wait_until(loop, [&] { return b.cluster->is_member(o.advertise); }));
  dog::rpc::Target t;
  t.ns = "Room";
  auto r = dog::rpc::gossip(b.cluster->rpc(), {o.advertise}, t, "t", "x", 5 * kj::SECONDS)
               .wait(loop.wait_scope());
  CHECK(r[0].ok);
  CHECK(r[0].reply == o.advertise + ":x");
}

TEST_CASE("cluster: seeds are retried until one answers (a seed that starts later)", "[cluster]") {
  Loop loop;
  auto key = key_file(generate_key() + "\n");
  uint16_t port = 0;
  {
    asio::ip::udp::socket probe(loop.io(), asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }
  const std::string seed = "127.0.0.1:" + std::to_string(port);
  // b's first join attempt runs inside start(), before the seed exists: it is refused.
  TestNode b(loop, "b", key, {seed});
  TestNode a(loop, "a", key, {}, seed);
  b.cluster->joined().wait(loop.wait_scope());
  REQUIRE(wait_until(loop, [&] { return a.cluster->is_member("b") && b.cluster->is_member("a"); }));
}
