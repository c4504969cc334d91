// DOG's conformance items (dog-semantics §7) whose behaviour crosses nodes, with the Group on one
// node and its Replicas on others: placement and slot counts kept at a remote Group, slot
// releases of remote Replicas, and
// emit and whisper between Replicas on different nodes. Single-node conformance is in
// conformance_*_test.cc; failover and partitions in multinode_test.cc.
#include "tests/runtime/multinode_harness.h"

namespace dog::test {
namespace {

// Picks a Group name whose first Replica, created by a request entering at a node that is not
// the Group's, lives on a third node: every hop of the test then crosses the network.
std::string remote_everything(Cluster& c, std::string& entry) {
  for (int i = 0; i < 40; ++i) {
    c.group = "g" + std::to_string(i);
    std::string gnode = c.group_owner();
    entry = gnode == "n0" ? "n1" : "n0";
    Request probe;
    probe.method = "GET";
    probe.target = "/probe";
    Response res = c.request(entry, "probe", probe);
    REQUIRE(res.status == 200);
    auto hosts = c.replica_hosts();
    REQUIRE(hosts.size() == 1);
    if (hosts.begin()->second != gnode && hosts.begin()->second != entry) return hosts.begin()->first;
  }
  FAIL("no Group name of 40 placed its first Replica on a third node");
  return "";
}

Request get(const std::string& path) {
  Request r;
  r.method = "GET";
  r.target = path;
  return r;
}

}  // namespace

TEST_CASE("cross-node conformance 02-05 and 07: a remote Group counts slots of Replicas on other nodes", "[cluster][dog]") {
  Cluster c(3);
  // Distinct request ids from every node: with limit 2 every third one opens a Replica (02-03).
  std::vector<User> users;
  for (int i = 0; i < 6; ++i) users.push_back(c.connect("u" + std::to_string(i), "n" + std::to_string(i % 3)));
  auto hosts = c.replica_hosts();
  REQUIRE(hosts.size() == 3);
  for (auto& [sid, node] : hosts) CHECK(c.slots(sid) == 2);
  std::set<std::string> nodes_used;
  for (auto& [sid, node] : hosts) nodes_used.insert(node);
  CHECK(nodes_used.size() >= 2);
  // A known request id whose Replica is full, with every Replica full, gets a new one (07); the
  // same request id twice takes two slots there (04), and returns to it while it has room (05).
  std::string before = c.replica_of("u0");
  users.push_back(c.connect("u0", "n2"));
  std::string fresh = c.replica_of("u0");
  CHECK(fresh != before);
  CHECK(c.replica_hosts().size() == 4);
  CHECK(c.slots(fresh) == 1);
  users.push_back(c.connect("u0", "n1"));
  CHECK(c.replica_of("u0") == fresh);
  CHECK(c.slots(fresh) == 2);
}

TEST_CASE("cross-node conformance 10 and 13: a remote Replica's plain response releases its slot at the remote Group", "[cluster][dog]") {
  Cluster c(3);
  std::string entry;
  std::string sid = remote_everything(c, entry);
  // Across nodes the release is sent before the response and lands one network delay later
  // (docs/cluster.md, "Slots"), so the count is waited for, not read at once.
  REQUIRE(c.wait([&] { return c.slots(sid) == 0; }));
  for (int i = 0; i < 6; ++i) {
    Response res = c.request("n" + std::to_string(i % 3), "p" + std::to_string(i), get("/hello"));
    CHECK(res.status == 200);
    CHECK(res.body == "room " + sid);
    REQUIRE(c.wait([&] { return c.slots(sid) == 0; }));
  }
  CHECK(c.replica_hosts().size() == 1);  // sequential requests never needed a second Replica
  Response boom = c.request(entry, "p9", get("/boom"));
  CHECK(boom.status == 500);
  REQUIRE(c.wait([&] { return c.slots(sid) == 0; }));
}

TEST_CASE("cross-node: a Replica's response with more headers than a relayed head may carry is a 502 at the entry node", "[cluster]") {
  Cluster c(3);
  std::string entry;
  std::string sid = remote_everything(c, entry);
  Response res = c.request(entry, "p1", get("/many-headers"));
  CHECK(res.status == 502);
  CHECK(res.headers.get("x-h0") == std::nullopt);
  REQUIRE(c.wait([&] { return c.slots(sid) == 0; }));  // the refused answer released its slot
  // Served on the Replica's own node, the same response is whole.
  Response local = c.request(c.replica_hosts().at(sid), "p2", get("/many-headers"));
  CHECK(local.status == 200);
  CHECK(local.headers.get("x-h1099").has_value());
}

TEST_CASE("cross-node conformance 11, 12 and 30: a remote WebSocket keeps its slot until it closes, a failed upgrade frees it", "[cluster][dog]") {
  Cluster c(3);
  std::string entry;
  std::string sid = remote_everything(c, entry);
  User a = c.connect("a", entry);
  REQUIRE(c.replica_of("a") == sid);
  CHECK(c.slots(sid) == 1);
  // A bad upgrade through the same remote Replica: refused, and its slot is back at once.
  Request bad = Cluster::upgrade_request("b");
  bad.headers.set("Sec-WebSocket-Key", "short");
  Response res = c.request(entry, "b", bad);
  CHECK_FALSE(res.websocket);
  CHECK(res.status >= 400);
  REQUIRE(c.wait([&] { return c.slots(sid) == 1; }));
  // The client closes: onclose runs on the Replica's node, then the Group hears the release.
  a.handler->on_close(a.ws, 1000, "");
  REQUIRE(c.wait([&] { return c.slots(sid) == 0; }));
}

TEST_CASE("cross-node conformance 33-34 and 38-41: emit stays on its Replica, whisper finds every socket of its target", "[cluster][dog]") {
  Cluster c(3);
  std::vector<User> users;
  for (int i = 0; i < 6; ++i) users.push_back(c.connect("u" + std::to_string(i), "n" + std::to_string(i % 3)));
  // u0's Replica holds u0 and one other user; emit reaches that one only, never the sender.
  std::string r0 = c.replica_of("u0");
  std::vector<size_t> mates, others;
  for (size_t i = 1; i < users.size(); ++i) (c.replica_of(users[i].name) == r0 ? mates : others).push_back(i);
  REQUIRE(mates.size() == 1);
  // A second socket of u5 on another Replica (every Replica is full: a new one), entering
  // elsewhere: whisper reaches both of u5's sockets (38-39).
  users.push_back(c.connect("u5", "n1"));
  c.say(users[0], "e:emitted");
  c.say(users[0], "w:u5:secret");
  c.say(users[0], "w:nobody:lost");  // 40: an unknown id
  c.say(users[0], "w:u0:mine");      // 41: yourself
  c.say(users[1], "b:marker");       // everything u0 sent before has been delivered once it lands
  REQUIRE(c.wait([&] { return users[0].count("marker") == 1 && users[5].count("marker") == 1 && users[6].count("marker") == 1; }));
  REQUIRE(c.wait([&] { return users[mates[0]].count("emitted") == 1; }));
  CHECK(users[0].count("emitted") == 0);
  for (size_t i : others) CHECK(users[i].count("emitted") == 0);
  CHECK(users[6].count("emitted") == 0);
  REQUIRE(c.wait([&] { return users[5].count("secret") == 1 && users[6].count("secret") == 1; }));
  for (auto& u : users) {
    CHECK(u.count("lost") == 0);
    CHECK(u.count("mine") == 0);
    if (u.name != "u5") CHECK(u.count("secret") == 0);
  }
}

}  // namespace dog::test
