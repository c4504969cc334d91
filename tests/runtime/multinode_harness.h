// The DOG runtime on several nodes in one process, for tests: real runtimes, real Cap'n Proto
// connections over loopback TCP (encrypted, as in production), a fixed member list instead of
// SWIM (FakePort). The client end of each WebSocket is a TestSocket, driven exactly as the front
// door drives it. Used by multinode_test.cc and multinode_conformance_test.cc.
#pragma once

#include <asio/co_spawn.hpp>
#include <map>
#include <memory>
#include <set>

#include "membership/keyring.h"
#include "membership/rng.h"
#include "node/runtime/runtime.h"
#include "routing/routing_table.h"
#include "rpc/connection_manager.h"
#include "tests/runtime/harness.h"

namespace dog::test {
namespace {  // each test file gets its own copy

using tcp = asio::ip::tcp;

struct Shared {
  std::vector<std::string> members;
  std::map<std::string, uint32_t> loads;
};

// A ClusterPort over a fixed member list.
struct FakePort final : ClusterPort {
  std::string name;
  Shared* shared = nullptr;
  std::optional<std::vector<std::string>> view;  // this node's own member list (a partition)
  rpc::ConnectionManager* mgr = nullptr;
  std::optional<routing::RoutingTable> tbl;
  uint64_t epoch = 0;

  void rebuild() {
    routing::View v;
    v.epoch = ++epoch;
    for (auto& m : members()) v.members.push_back({m, 1.0});
    auto r = routing::RoutingTable::build(v);
    REQUIRE(r.table);
    tbl.emplace(std::move(*r.table));
  }
  const std::string& self() const override { return name; }
  std::string owner(const routing::ObjectId& id) const override { return std::string(tbl->owner(id).node_id); }
  const routing::RoutingTable& table() const override { return *tbl; }
  std::vector<std::string> members() const override { return view ? *view : shared->members; }
  bool is_member(const std::string& n) const override {
    auto m = members();
    return std::find(m.begin(), m.end(), n) != m.end();
  }
  uint32_t load_of(const std::string& n) const override {
    auto it = shared->loads.find(n);
    return it == shared->loads.end() ? 0 : it->second;
  }
  void publish_load(uint32_t r) override { shared->loads[name] = r; }
  rpc::ConnectionManager& rpc() override { return *mgr; }
};

struct Lobby : Group {
  Namespace& link(Env& env) override { return env["ROOM"]; }
};

// onmessage: "b:X" broadcasts X, "w:T:X" whispers X to T, "e:X" emits X, "g" gossips and
// answers "peers:N ok:M".
struct Room : Replica {
  Namespace& link(Env& env) override { return env["LOBBY"]; }
  Task<Response> receive(Request& req) override {
    if (req.is_websocket_upgrade()) co_return co_await connect(req);
    if (req.path() == "/boom") throw std::runtime_error("receive bug");
    if (req.path() == "/many-headers") {  // more than a relayed head may carry (wire::kMaxRelayedHeaders)
      auto res = Response::text(200, "many");
      for (int i = 0; i < 1100; ++i) res.headers.add("x-h" + std::to_string(i), "v");
      co_return res;
    }
    co_return Response::text(200, "room " + uid());
  }
  Task<void> onmessage(Socket& s, std::string_view data) override {
    std::string m(data);
    if (m.rfind("b:", 0) == 0) co_await s.broadcast(m.substr(2));
    else if (m.rfind("w:", 0) == 0) {
      auto colon = m.find(':', 2);
      co_await s.whisper(m.substr(2, colon - 2), m.substr(colon + 1));
    } else if (m.rfind("e:", 0) == 0) s.emit(m.substr(2));
    else if (m == "g") {
      auto res = co_await gossip(Json("hi"), std::chrono::seconds(5));
      int ok = 0;
      for (auto& r : res) ok += r.ok() ? 1 : 0;
      s.send("peers:" + std::to_string(res.size()) + " ok:" + std::to_string(ok));
    }
  }
  Task<Json> ongossip(const Json&) override { co_return Json(uid()); }
};

struct Node {
  FakePort port;
  std::unique_ptr<Runtime> rt;
  std::unique_ptr<membership::Rng> rng;
  std::unique_ptr<rpc::ConnectionManager> mgr;
  uint16_t listen_port = 0;
};

membership::Keyring::Key test_key() {
  membership::Keyring::Key k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = uint8_t(i * 7 + 3);
  return k;
}

struct User {
  std::string name;
  std::string entry;  // the node the client connected to
  std::shared_ptr<TestSocket> ws;
  std::shared_ptr<http::WebSocketHandler> handler;
  int count(const std::string& m) const { return int(std::count(ws->got.begin(), ws->got.end(), m)); }
};

struct Cluster {
  node::Loop loop;
  membership::Keyring keyring{test_key()};
  Shared shared;
  std::map<std::string, std::unique_ptr<Node>> nodes;
  uint64_t next_socket = 1;

  explicit Cluster(int n) {
    for (int i = 0; i < n; ++i) shared.members.push_back("n" + std::to_string(i));
    for (auto& name : shared.members) make_node(name);
    connect_peers();
  }
  void connect_peers() {
    for (auto& [a, na] : nodes)
      for (auto& [b, nb] : nodes)
        if (a != b) na->mgr->add_peer(b, tcp::endpoint(asio::ip::make_address("127.0.0.1"), nb->listen_port));
  }
  // A node joins: every node's view gains it; with `notify`, the runtimes hear of the change
  // (without, the old nodes have not re-registered anything yet: the newcomer must ask).
  void join(const std::string& name, bool notify = true) {
    shared.members.push_back(name);
    make_node(name);
    connect_peers();
    for (auto& [n, node] : nodes) {
      node->port.rebuild();
      if (notify) node->rt->view_changed();
    }
  }
  // Each node sees only the members of its side; heal() ends it.
  void partition(const std::vector<std::vector<std::string>>& sides) {
    for (auto& side : sides)
      for (auto& n : side) {
        nodes.at(n)->port.view = side;
        nodes.at(n)->port.rebuild();
      }
  }
  void heal() {
    for (auto& [n, node] : nodes) {
      node->port.view.reset();
      node->port.rebuild();
    }
    for (auto& [n, node] : nodes) node->rt->view_changed();
  }
  void make_node(const std::string& name) {
    {
      auto node = std::make_unique<Node>();
      node->port.name = name;
      node->port.shared = &shared;
      node->port.rebuild();
      node->rt = std::make_unique<Runtime>(loop, RuntimeConfig{}, &node->port);
      node->rt->add_group("LOBBY", [] {
        auto g = std::make_shared<Lobby>();
        g->limit = 2;
        return std::shared_ptr<Group>(g);
      });
      node->rt->add_replica("ROOM", [] { return std::shared_ptr<Replica>(std::make_shared<Room>()); });
      node->rng = std::make_unique<membership::Rng>(42 + i_of(name));
      rpc::ManagerConfig mc;
      mc.node_name = name;
      node->mgr = std::make_unique<rpc::ConnectionManager>(loop, keyring, mc, node->rt->make_service(), *node->rng);
      node->port.mgr = node->mgr.get();
      node->listen_port = node->mgr->listen(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
      nodes[name] = std::move(node);
    }
  }
  ~Cluster() {
    // Runtimes first: their pending work sees them gone and stops; then the connections.
    for (auto& [n, node] : nodes) node->rt.reset();
    settle_briefly();
    for (auto& [n, node] : nodes) node->mgr.reset();
    settle_briefly();
  }
  static int i_of(const std::string& name) { return std::stoi(name.substr(1)); }

  void settle_briefly() {
    for (int i = 0; i < 50; ++i) {
      loop.io().restart();
      loop.poll();
      loop.io().poll();
    }
  }
  // Runs the loop until `done` or a generous timeout (never a bound on how fast things are).
  bool wait(const std::function<bool()>& done, int max_ms = 20000) {
    for (int i = 0; i < max_ms; ++i) {
      if (done()) return true;
      loop.timer().afterDelay(1 * kj::MILLISECONDS).wait(loop.wait_scope());
    }
    return done();
  }
  template <typename T>
  T run(Task<T> task) {
    std::optional<T> out;
    std::exception_ptr err;
    bool done = false;
    asio::co_spawn(loop.io(), std::move(task), [&](std::exception_ptr e, T v) {
      err = e;
      if (!e) out = std::move(v);
      done = true;
    });
    REQUIRE(wait([&] { return done; }));
    if (err) std::rethrow_exception(err);
    return std::move(*out);
  }

  Runtime& rt(const std::string& n) { return *nodes.at(n)->rt; }
  std::string group = "lobby";  // the Group every user of this cluster joins
  std::string gid_hex() { return nodes.begin()->second->rt->env()["LOBBY"].id_from_name(group).hex(); }
  std::string group_owner() { return nodes.begin()->second->port.owner(*routing_id(gid_hex())); }
  // The nodes that host a live copy of the lobby Group.
  std::vector<std::string> group_hosts() {
    std::vector<std::string> out;
    for (auto& [n, node] : nodes)
      if (node->rt->group_core(node->rt->env()["LOBBY"], gid_hex())) out.push_back(n);
    return out;
  }
  static std::optional<routing::ObjectId> routing_id(const std::string& hex) {
    return routing::id_from_string("LOBBY", hex).id;
  }

  static Request upgrade_request(const std::string& user) {
    Request req;
    req.method = "GET";
    req.target = "/ws?u=" + user;
    req.headers.set("Upgrade", "websocket");
    req.headers.set("Connection", "Upgrade");
    req.headers.set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    req.headers.set("Sec-WebSocket-Version", "13");
    return req;
  }
  // identify + fetch of `req` for `user`, entering at `rt`: what a request handler does.
  static Task<Response> fetch(Runtime& rt, std::string group, std::string user, Request req) {
    auto& env = rt.env();
    auto stub = co_await identify(env["LOBBY"].id_from_name(group), user, {env["LOBBY"], env["ROOM"]});
    co_return co_await stub.fetch(req);
  }
  Response request(const std::string& entry, const std::string& user, Request req) {
    return run(fetch(rt(entry), group, user, std::move(req)));
  }
  // The Group's slot count of `sid` on the node hosting the Group, if any.
  std::optional<int> slots(const std::string& sid) {
    for (auto& [n, node] : nodes)
      if (auto* core = node->rt->group_core(node->rt->env()["LOBBY"], gid_hex())) return core->count(sid);
    return std::nullopt;
  }

  // The Replica the Group last placed `user` on (its request id's mapping), if any.
  std::string replica_of(const std::string& user) {
    for (auto& [n, node] : nodes)
      if (auto* core = node->rt->group_core(node->rt->env()["LOBBY"], gid_hex()))
        return core->mapping(user).value_or("");
    return "";
  }

  User connect(const std::string& user, const std::string& entry) {
    Response res = run(fetch(rt(entry), group, user, upgrade_request(user)));
    REQUIRE(res.websocket);
    User u{user, entry, std::make_shared<TestSocket>(), res.websocket};
    u.ws->id_ = next_socket++;
    u.handler->on_open(u.ws);
    return u;
  }
  void say(User& u, const std::string& m) { u.handler->on_message(u.ws, m, true); }

  // Which node hosts each live Replica of the lobby.
  std::map<std::string, std::string> replica_hosts() {
    std::map<std::string, std::string> out;
    for (auto& [n, node] : nodes) {
      if (!node->rt) continue;
      auto& ns = node->rt->env()["ROOM"];
      for (auto& [sid, host] : node->rt->group_peers(node->rt->env()["LOBBY"], gid_hex(), ""))
        out[sid] = host;
      (void)ns;
    }
    return out;
  }

  // Kills `name`: its connections drop, and the survivors hear it is gone.
  void kill(const std::string& name) {
    auto& dead = nodes.at(name);
    dead->rt.reset();
    dead->mgr.reset();
    std::erase(shared.members, name);
    shared.loads.erase(name);
    for (auto& [n, node] : nodes) {
      if (n == name) continue;
      node->port.rebuild();
      node->mgr->mark_dead(name);
      node->rt->node_gone(name);
    }
    nodes.erase(name);
  }
};

}  // namespace
}  // namespace dog::test
