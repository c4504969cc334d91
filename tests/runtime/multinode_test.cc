// The DOG runtime on several nodes in one process: real runtimes, real Cap'n Proto connections
// over loopback TCP (encrypted, as in production), a fixed member list instead of SWIM. The
// client end of each WebSocket is a TestSocket, driven exactly as the front door drives it.
//
// What it shows: identify and fetch reach objects on other nodes; Replicas of one Group spread
// over nodes; broadcast and whisper reach users on every node, once, and never the sender;
// a broadcast crosses the network once per node that holds sockets of the group; a node's death
// closes its relayed clients with 1012 and the Group comes back on its id's new owner with exact
// slot counts.
#include "tests/runtime/multinode_harness.h"

namespace dog::test {

TEST_CASE("cluster: users on three nodes see each other's broadcasts and whispers", "[cluster]") {
  Cluster c(3);
  std::vector<User> users;
  for (int i = 0; i < 10; ++i) users.push_back(c.connect("u" + std::to_string(i), "n" + std::to_string(i % 3)));

  // Five Replicas of limit 2, created by the Group on its node and spread over the nodes.
  auto hosts = c.replica_hosts();
  CHECK(hosts.size() == 5);
  std::set<std::string> host_nodes;
  for (auto& [sid, h] : hosts) host_nodes.insert(h);
  CHECK(host_nodes.size() >= 2);

  c.say(users[0], "b:hello");
  REQUIRE(c.wait([&] {
    for (size_t i = 1; i < users.size(); ++i)
      if (users[i].count("hello") != 1) return false;
    return true;
  }));
  CHECK(users[0].count("hello") == 0);  // DOG: the sender's own request id is excluded

  c.say(users[4], "w:u8:psst");
  REQUIRE(c.wait([&] { return users[8].count("psst") == 1; }));
  c.say(users[1], "b:marker");  // everything sent before the marker has been delivered once it lands
  REQUIRE(c.wait([&] { return users[0].count("marker") == 1 && users[8].count("marker") == 1; }));
  for (size_t i = 0; i < users.size(); ++i)
    if (i != 8) CHECK(users[i].count("psst") == 0);
  CHECK(users[8].count("psst") == 1);
}

TEST_CASE("cluster: a broadcast crosses the network once per node holding sockets", "[cluster]") {
  Cluster c(3);
  std::vector<User> users;
  for (int i = 0; i < 12; ++i) users.push_back(c.connect("u" + std::to_string(i), "n" + std::to_string(i % 3)));
  uint64_t sent_before = 0;
  for (auto& [n, node] : c.nodes) sent_before += node->rt->stats().casts_sent;
  c.say(users[0], "b:once");
  REQUIRE(c.wait([&] {
    for (size_t i = 1; i < users.size(); ++i)
      if (users[i].count("once") != 1) return false;
    return true;
  }));
  uint64_t sent = 0;
  for (auto& [n, node] : c.nodes) sent += node->rt->stats().casts_sent;
  // At most: the Replica's node to the Group's node (1), then the Group's node to each of the
  // two other nodes holding sockets (2). Never one per socket (11) or per Replica (6).
  CHECK(sent - sent_before <= 3);
}

TEST_CASE("cluster: gossip reaches peer Replicas on other nodes", "[cluster]") {
  Cluster c(3);
  std::vector<User> users;
  for (int i = 0; i < 6; ++i) users.push_back(c.connect("u" + std::to_string(i), "n" + std::to_string(i % 3)));
  c.say(users[0], "g");
  REQUIRE(c.wait([&] { return !users[0].ws->got.empty(); }));
  CHECK(users[0].ws->got.back() == "peers:2 ok:2");
}

TEST_CASE("cluster: a node's death closes its relays with 1012 and the Group is rebuilt exactly", "[cluster]") {
  Cluster c(3);
  std::vector<User> users;
  for (int i = 0; i < 10; ++i) users.push_back(c.connect("u" + std::to_string(i), "n" + std::to_string(i % 3)));
  std::string gnode = c.group_owner();
  auto hosts = c.replica_hosts();

  c.kill(gnode);
  // Users whose client socket was on the dead node are simply gone (their TCP connection died
  // with it). Users relayed to a Replica on the dead node get 1012 and reconnect.
  std::set<std::string> dead_replicas;
  for (auto& [sid, h] : hosts)
    if (h == gnode) dead_replicas.insert(sid);

  std::string new_owner = c.group_owner();
  REQUIRE(new_owner != gnode);
  // The Group comes back on its new owner with one Replica per surviving Replica, with the
  // exact number of sockets each holds.
  auto dump = [&] {
    std::string out = "gnode=" + gnode + " new=" + new_owner + "\n";
    for (auto& [sid, h] : hosts) {
      out += sid.substr(0, 6) + "@" + h;
      if (h != gnode) {
        auto rep = c.rt(h).peer(c.rt(h).env()["ROOM"], sid);
        out += rep ? " conns=" + std::to_string(rep->connections()) : " gone";
      }
      auto* core = c.rt(new_owner).group_core(c.rt(new_owner).env()["LOBBY"], c.gid_hex());
      if (core && core->count(sid)) out += " count=" + std::to_string(*core->count(sid));
      out += "\n";
    }
    return out;
  };
  bool rebuilt = c.wait([&] {
    auto* core = c.rt(new_owner).group_core(c.rt(new_owner).env()["LOBBY"], c.gid_hex());
    if (!core) return false;
    size_t alive = 0;
    for (auto& [sid, h] : hosts) alive += h != gnode ? 1 : 0;
    if (core->replicas().size() != alive) return false;
    // and every slot count has caught up with the sockets that died with the node
    for (auto& sid : core->replicas()) {
      if (!hosts.count(sid)) { UNSCOPED_INFO("unknown sid " << sid << " count " << *core->count(sid)); return false; }
      auto host = hosts.at(sid);
      auto rep = c.rt(host).peer(c.rt(host).env()["ROOM"], sid);
      if (!rep || core->count(sid) != int(rep->connections())) return false;
    }
    return true;
  });
  INFO(dump());
  REQUIRE(rebuilt);
  auto& core = *c.rt(new_owner).group_core(c.rt(new_owner).env()["LOBBY"], c.gid_hex());
  for (auto& sid : core.replicas()) {
    INFO("sid " << sid << " known " << hosts.count(sid) << " gnode " << gnode << " new " << new_owner);
    auto host = hosts.at(sid);
    auto rep = c.rt(host).peer(c.rt(host).env()["ROOM"], sid);
    REQUIRE(rep);
    CHECK(core.count(sid) == int(rep->connections()));
    CHECK(core.count(sid) <= 2);  // limit holds
  }
  // Relayed clients of the dead node's Replicas were closed with 1012; the others stay open.
  REQUIRE(c.wait([&] {
    for (auto& u : users)
      if (u.entry != gnode && !u.ws->open && u.ws->close_code != 1012) return false;
    return true;
  }));
  for (auto& u : users)
    if (u.entry != gnode && !u.ws->open) CHECK(u.ws->close_code == 1012);
  // Everyone who lost a socket reconnects to a survivor, as a client would; then all chat
  // through the rebuilt Group.
  std::string survivor = c.nodes.begin()->first;
  for (auto& u : users)
    if (u.entry == gnode || !u.ws->open) u = c.connect(u.name, survivor);
  std::vector<User*> alive;
  for (auto& u : users) alive.push_back(&u);
  c.say(*alive[0], "b:after");
  REQUIRE(c.wait([&] {
    for (size_t i = 1; i < alive.size(); ++i)
      if (alive[i]->count("after") != 1) return false;
    return true;
  }));
}

TEST_CASE("cluster: two of three nodes die at once and the survivor serves the Group alone", "[cluster]") {
  Cluster c(3);
  std::vector<User> users;
  for (int i = 0; i < 9; ++i) users.push_back(c.connect("u" + std::to_string(i), "n" + std::to_string(i % 3)));
  std::string survivor = "n1";
  c.kill("n0");
  c.kill("n2");
  REQUIRE(c.group_owner() == survivor);
  // Everyone who lost a socket reconnects to the survivor; limit holds; all chat.
  for (auto& u : users)
    if (u.entry != survivor || !u.ws->open) u = c.connect(u.name, survivor);
  auto& core = *c.rt(survivor).group_core(c.rt(survivor).env()["LOBBY"], c.gid_hex());
  REQUIRE(c.wait([&] {
    int slots = 0;
    for (auto& sid : core.replicas()) slots += core.count(sid).value_or(0);
    return slots == 9;
  }));
  for (auto& sid : core.replicas()) CHECK(core.count(sid).value_or(0) <= 2);
  c.say(users[4], "b:alone");
  REQUIRE(c.wait([&] {
    for (size_t i = 0; i < users.size(); ++i)
      if (i != 4 && users[i].count("alone") != 1) return false;
    return true;
  }));
}

TEST_CASE("cluster: a joining node that takes a Group's id moves nothing and makes no copy", "[cluster]") {
  Cluster c(2);
  std::vector<User> users;
  for (int i = 0; i < 4; ++i) users.push_back(c.connect("u" + std::to_string(i), "n" + std::to_string(i % 2)));
  std::string before = c.group_owner();
  // Find a new node name that wins the lobby's id (placement is deterministic in the name).
  std::string newcomer;
  for (int i = 2; i < 200 && newcomer.empty(); ++i) {
    routing::View v;
    v.epoch = 1;
    for (auto& m : c.shared.members) v.members.push_back({m, 1.0});
    v.members.push_back({"n" + std::to_string(i), 1.0});
    auto t = routing::RoutingTable::build(v);
    if (std::string(t.table->owner(*Cluster::routing_id(c.gid_hex())).node_id) == "n" + std::to_string(i))
      newcomer = "n" + std::to_string(i);
  }
  REQUIRE(!newcomer.empty());
  bool notify = GENERATE(false, true);
  INFO("old nodes told of the join first: " << notify);
  c.join(newcomer, notify);
  REQUIRE(c.group_owner() == newcomer);
  // A user entering through the newcomer reaches the live Group: still one copy, on its old node.
  users.push_back(c.connect("late", newcomer));
  CHECK(c.group_hosts() == std::vector<std::string>{before});
  c.say(users[0], "b:welcome");
  bool all = c.wait([&] {
    for (size_t i = 1; i < users.size(); ++i)
      if (users[i].count("welcome") != 1) return false;
    return true;
  });
  for (auto& u : users) INFO(u.name << "@" << u.entry << " got " << u.count("welcome") << " open " << u.ws->open);
  std::string report;
  for (auto& u : users) report += u.name + "@" + u.entry + "=" + std::to_string(u.count("welcome")) + (u.ws->open ? " " : "(closed) ");
  INFO(report << " group hosts " << c.group_hosts().size() << " before " << before);
  REQUIRE(all);
  for (auto& u : users) CHECK(u.ws->open);  // no socket was closed by the join
  // The newcomer's directory names the Group's host; when the host evicts the idle Group, the
  // entry goes too (the directory holds live objects only).
  REQUIRE(c.wait([&] { return c.rt(newcomer).known_host(c.gid_hex()) == before; }));
  for (auto& u : users) {
    u.ws->open = false;
    u.handler->on_close(u.ws, 1000, "");
  }
  REQUIRE(c.wait([&] {
    for (auto& [n, node] : c.nodes) node->rt->evict_all_idle();
    return c.group_hosts().empty();
  }));
  CHECK(c.wait([&] { return c.rt(newcomer).known_host(c.gid_hex()).empty(); }));
}

TEST_CASE("cluster: after a partition heals, a Group live on both sides becomes one", "[cluster]") {
  Cluster c(3);
  std::string owner = c.group_owner();
  std::vector<std::string> others;
  for (auto& m : c.shared.members)
    if (m != owner) others.push_back(m);
  // The owner's side alone, and the other two: each side activates the lobby.
  c.partition({{owner}, others});
  std::vector<User> users;
  users.push_back(c.connect("a0", owner));
  users.push_back(c.connect("a1", owner));
  users.push_back(c.connect("b0", others[0]));
  users.push_back(c.connect("b1", others[1]));
  users.push_back(c.connect("b2", others[0]));
  REQUIRE(c.group_hosts().size() == 2);

  c.heal();
  REQUIRE(c.wait([&] { return c.group_hosts() == std::vector<std::string>{owner}; }));
  // The kept copy knows every Replica of both sides with its exact socket count.
  REQUIRE(c.wait([&] {
    auto* core = c.rt(owner).group_core(c.rt(owner).env()["LOBBY"], c.gid_hex());
    int slots = 0;
    for (auto& sid : core->replicas()) slots += core->count(sid).value_or(0);
    return slots == 5;
  }));
  // One copy: a broadcast reaches every user exactly once, from either side.
  c.say(users[2], "b:healed");
  c.say(users[0], "b:healed2");
  REQUIRE(c.wait([&] {
    for (size_t i = 0; i < users.size(); ++i) {
      if (i != 2 && users[i].count("healed") != 1) return false;
      if (i != 0 && users[i].count("healed2") != 1) return false;
    }
    return true;
  }));
  c.say(users[1], "b:marker");
  REQUIRE(c.wait([&] { return users[0].count("marker") == 1 && users[4].count("marker") == 1; }));
  for (size_t i = 0; i < users.size(); ++i) {
    CHECK(users[i].count("healed") == (i == 2 ? 0 : 1));
    CHECK(users[i].count("healed2") == (i == 0 ? 0 : 1));
  }
}

// A Replica reached by its id (the stub a Group's identify returns, without the Group).
static Task<Response> fetch_by_id(Runtime& rt, std::string hex, Request req) {
  auto& ns = rt.env()["ROOM"];
  auto stub = ns.get(ns.id_from_string(hex));
  co_return co_await stub.fetch(req);
}

TEST_CASE("cluster: after a partition heals, a Replica id live on two nodes keeps only its owner's copy", "[cluster]") {
  Cluster c(3);
  const std::string hex = c.rt("n0").env()["ROOM"].id_from_name("solo").hex();
  const std::string owner = c.nodes.begin()->second->port.owner(*routing::id_from_string("ROOM", hex).id);
  std::vector<std::string> others;
  for (auto& m : c.shared.members)
    if (m != owner) others.push_back(m);
  auto holders = [&] {
    std::vector<std::string> out;
    for (auto& [n, node] : c.nodes)
      if (node->rt->peer(node->rt->env()["ROOM"], hex)) out.push_back(n);
    return out;
  };
  // Two activations of one id, as two sides of a partition can make them (Replicas are reached
  // only through their Group's identify, so the test activates them directly).
  c.partition({{owner}, others});
  c.rt(owner).replica(c.rt(owner).env()["ROOM"], hex);
  c.rt(others[0]).replica(c.rt(others[0]).env()["ROOM"], hex);
  REQUIRE(holders().size() == 2);
  // A client socket on each copy (the headers a Group's identify sets; no Group here).
  auto open_socket = [&](const std::string& user, const std::string& node) {
    Request req = Cluster::upgrade_request(user);
    req.headers.set("x-dog-replica-identifier", hex);
    req.headers.set("x-dog-client-identifier", user);
    req.headers.set("x-dog-group-identifier", "");
    Response res = c.run(fetch_by_id(c.rt(node), hex, std::move(req)));
    INFO(res.status << " " << res.body);
    REQUIRE(res.websocket);
    User u{user, node, std::make_shared<TestSocket>(), res.websocket};
    u.ws->id_ = c.next_socket++;
    u.handler->on_open(u.ws);
    return u;
  };
  User kept = open_socket("a", owner);
  User moved = open_socket("b", others[0]);

  c.heal();
  // The other node registered its copy with the id's owner, was told "conflict", and retired it:
  // its client is told 1012 (reconnect), the owner's is not touched.
  REQUIRE(c.wait([&] { return holders() == std::vector<std::string>{owner}; }));
  REQUIRE(c.wait([&] { return moved.ws->close_code == 1012; }));
  CHECK(kept.ws->open);
  CHECK(c.rt(others[0]).stats().duplicates_retired == 1);
  CHECK(c.rt(owner).stats().duplicates_retired == 0);
  CHECK(c.rt(others[0]).locate(c.rt(others[0]).env()["ROOM"], hex) == owner);
}

TEST_CASE("cluster: a node declared dead that comes back re-asserts its Replicas and sockets", "[cluster]") {
  Cluster c(3);
  std::string owner = c.group_owner();
  std::vector<User> users;
  for (int i = 0; i < 9; ++i) users.push_back(c.connect("u" + std::to_string(i), "n" + std::to_string(i % 3)));
  // `back`: a node that does not host the Group but hosts the most Replicas (placement is random).
  std::map<std::string, int> hosted;
  for (auto& [sid, host] : c.replica_hosts()) ++hosted[host];
  std::string back;
  for (auto& m : c.shared.members)
    if (m != owner && (back.empty() || hosted[m] > hosted[back])) back = m;
  REQUIRE(hosted[back] >= 1);
  // The peers declare `back` dead (it never hears of it: it was stopped or cut off)...
  for (auto& [n, node] : c.nodes)
    if (n != back) node->rt->node_gone(back);
  // ...then take it back when it refutes; it re-asserts what it holds.
  c.rt(back).reassert();
  auto* core = c.rt(owner).group_core(c.rt(owner).env()["LOBBY"], c.gid_hex());
  REQUIRE(core);
  // Every Replica still alive on `back` is known to the Group again, with its exact slots.
  auto& room = c.rt(back).env()["ROOM"];
  REQUIRE(c.wait([&] {
    size_t ok = 0, total = 0;
    for (auto& sid : c.rt(back).replica_ids(room)) {
      auto rep = c.rt(back).peer(room, sid);
      if (!rep || rep->connections() == 0) continue;
      ++total;
      if (core->count(sid) && *core->count(sid) == int(rep->connections())) ++ok;
    }
    return total > 0 && ok == total;
  }));
  // Users whose socket is on `back` and whose Replica is on `back` hear broadcasts again.
  std::vector<User*> open;
  for (auto& u : users)
    if (u.ws->open) open.push_back(&u);
  REQUIRE(open.size() >= 3);
  c.say(*open[0], "b:back");
  REQUIRE(c.wait([&] {
    for (size_t i = 1; i < open.size(); ++i)
      if (open[i]->count("back") != 1) return false;
    return true;
  }));
  for (auto& u : users)
    if (u.entry == back) CHECK(u.ws->open);  // its local clients were never cut off
}


TEST_CASE("cluster: a Group being rebuilt casts to every member until all survivors have re-subscribed", "[cluster]") {
  Cluster c(4);
  std::vector<User> users;
  for (int i = 0; i < 16; ++i) users.push_back(c.connect("u" + std::to_string(i), "n" + std::to_string(i % 4)));
  std::string gnode = c.group_owner();
  auto hosts = c.replica_hosts();
  std::map<std::string, std::string> replica_node_of;  // user -> node of its Replica
  for (auto& u : users) replica_node_of[u.name] = hosts.at(c.replica_of(u.name));

  // The Group's node dies. Its id's new owner and every survivor but one (`late`) hear of it at
  // once; `late` has not yet: its sockets' subscriptions have not reached the new owner.
  std::vector<std::string> survivors;
  for (auto& [n, node] : c.nodes)
    if (n != gnode) survivors.push_back(n);
  c.nodes.at(gnode)->rt.reset();
  c.nodes.at(gnode)->mgr.reset();
  std::erase(c.shared.members, gnode);
  c.shared.loads.erase(gnode);
  for (auto& n : survivors) {
    c.nodes.at(n)->port.rebuild();
    c.nodes.at(n)->mgr->mark_dead(gnode);
  }
  std::string owner = c.group_owner();
  // `late`: the survivor other than the owner with the most users whose Replica survived.
  auto kept_on = [&](const std::string& n) {
    return std::count_if(users.begin(), users.end(), [&](const User& u) { return u.entry == n && replica_node_of[u.name] != gnode; });
  };
  std::string late;
  for (auto& n : survivors)
    if (n != owner && (late.empty() || kept_on(n) > kept_on(late))) late = n;
  for (auto& n : survivors)
    if (n != late) c.rt(n).node_gone(gnode);
  c.nodes.erase(gnode);

  // A sender whose Replica is on an informed node (placement is random, so one may have to be
  // connected now, at the new owner); receivers (not the sender: a broadcast skips it) whose
  // sockets are on `late` and whose Replicas survived.
  auto survived = [&](const User& u) { return u.entry != gnode && replica_node_of[u.name] != gnode; };
  auto informed_replica = [&](const User& u) { return survived(u) && replica_node_of[u.name] != late; };
  for (int i = 0; i < 64 && std::none_of(users.begin(), users.end(), informed_replica); ++i) {
    users.push_back(c.connect("extra" + std::to_string(i), owner));
    replica_node_of[users.back().name] = c.replica_hosts().at(c.replica_of(users.back().name));
  }
  User* sender = nullptr;
  std::vector<User*> on_late;
  for (auto& u : users)  // preferably one whose socket is not on `late`
    if (informed_replica(u) && (!sender || (sender->entry == late && u.entry != late))) sender = &u;
  for (auto& u : users) {
    if (survived(u) && u.entry == late && &u != sender) on_late.push_back(&u);  // broadcast skips self
  }
  REQUIRE(sender);
  REQUIRE_FALSE(on_late.empty());
  INFO("owner " << owner << " late " << late << " sender " << sender->name << " at " << sender->entry);
  c.say(*sender, "b:during-rebuild");
  CHECK(c.wait([&] {
    for (auto* u : on_late)
      if (u->count("during-rebuild") != 1) return false;
    return true;
  }));
  CHECK(c.rt(owner).stats().casts_to_all >= 1);
  // `late` catches up; its sockets subscribe; casts keep reaching them exactly once.
  c.rt(late).node_gone(gnode);
  c.say(*sender, "b:after");
  REQUIRE(c.wait([&] {
    for (auto* u : on_late)
      if (u->count("after") != 1) return false;
    return true;
  }));
  for (auto* u : on_late) CHECK(u->count("during-rebuild") == 1);
}

}  // namespace dog::test
