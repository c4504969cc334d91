// dog-bench-app: the app the benchmarks in bench/routed, bench/failover and bench/objects drive.
// Every request that names a user goes identify -> Group -> Replica; the answers say which
// node did what, so a benchmark can count cross-node hops from the outside.
//
//   build/bin/dog-bench-app --http 127.0.0.1:8080 --limit 3 [cluster flags: --bind --join ...]
//
// Routes (entry node = the node the client reached):
//   /hit?g=GROUP&u=USER  identify(GROUP, USER) then fetch; the Replica answers 200 with its node
//                        name in the body and in `x-replica-node`. The entry node counts the
//                        request, as "remote_hits" when the Replica is on another node and as
//                        "remote_groups" when the Group (identify) is.
//   /ws?g=GROUP&u=USER   a WebSocket on USER's Replica; every text message is broadcast to the
//                        whole group, the sender included (a chat room without JSON parsing).
//   /stats               this node only, no identify: {"node", "hits", "remote_hits",
//                        "remote_groups", "groups"
//                        (ids of Groups hosted here), "replicas", "sockets", "limit",
//                        "over_limit" (Replicas here holding more sockets than the limit),
//                        "max_sockets_per_replica"}.
//   /group-id?g=GROUP    the hex id of GROUP (to match the "groups" of /stats).
#include <CLI/CLI.hpp>
#include <map>
#include <set>
#include <string>

#include "dog/dog.h"

namespace {

// Process-wide bookkeeping. Every object of this node runs on its one loop, so no locks.
struct NodeStats {
  std::string node;            // this node's --name ("single" without a cluster)
  int limit = 3;
  uint64_t hits = 0;           // /hit requests that entered here
  uint64_t remote_hits = 0;    // ... whose Replica answered from another node
  uint64_t remote_groups = 0;  // ... whose Group (identify) was on another node
  std::set<std::string> groups;              // Group ids hosted here
  std::map<std::string, int> sockets;        // Replica id -> sockets it holds (Replicas here)
};
NodeStats g_stats;

struct BenchGroup : dog::Group {
  dog::Namespace& link(dog::Env& env) override {
    g_stats.groups.insert(uid());  // link() runs once, on the node that hosts this Group
    return env["ROOM"];
  }
  ~BenchGroup() override { g_stats.groups.erase(uid()); }
};

struct BenchRoom : dog::Replica {
  dog::Namespace& link(dog::Env& env) override {
    g_stats.sockets.emplace(uid(), 0);
    return env["GROUP"];
  }
  ~BenchRoom() override { g_stats.sockets.erase(uid()); }

  dog::Task<dog::Response> receive(dog::Request& req) override {
    if (req.path() == "/ws") co_return co_await connect(req);
    auto res = dog::Response::text(200, g_stats.node);
    res.headers.add("x-replica-node", g_stats.node);
    co_return res;
  }
  dog::Task<void> onopen(dog::Socket&) override {
    g_stats.sockets[uid()]++;
    co_return;
  }
  dog::Task<void> onclose(dog::Socket&) override {
    auto it = g_stats.sockets.find(uid());
    if (it != g_stats.sockets.end() && it->second > 0) it->second--;
    co_return;
  }
  dog::Task<void> onmessage(dog::Socket& socket, std::string_view data) override {
    dog::Json text = std::string(data);  // a JSON string is sent as-is (Runtime::serialize)
    co_await socket.broadcast(std::move(text), true);
  }
};

dog::Response stats_response() {
  int over = 0, most = 0;
  size_t sockets = 0;
  for (auto& [sid, n] : g_stats.sockets) {
    if (n > g_stats.limit) over++;
    most = std::max(most, n);
    sockets += static_cast<size_t>(n);
  }
  dog::Json j = {{"node", g_stats.node},           {"hits", g_stats.hits},
                 {"remote_hits", g_stats.remote_hits}, {"remote_groups", g_stats.remote_groups},
                 {"groups", g_stats.groups},
                 {"replicas", g_stats.sockets.size()}, {"sockets", sockets},
                 {"limit", g_stats.limit},         {"over_limit", over},
                 {"max_sockets_per_replica", most}};
  return dog::Response::json(200, j.dump());
}

}  // namespace

int main(int argc, char** argv) {
  dog::App app;
  app.cli().add_option("--limit", g_stats.limit, "most connections per Replica")->capture_default_str();
  app.add_group("GROUP", [] {
    auto g = std::make_shared<BenchGroup>();
    g->limit = g_stats.limit;
    return g;
  });
  app.replica<BenchRoom>("ROOM");
  app.fetch([&app](dog::Request& req, dog::Env& env) -> dog::Task<dog::Response> {
    if (g_stats.node.empty()) {  // flags are parsed by now
      auto* name = app.cli().get_option_no_throw("--name");
      g_stats.node = name && name->count() ? name->as<std::string>() : "single";
    }
    auto path = req.path();
    if (path == "/stats") co_return stats_response();
    std::string group(req.query_param("g").value_or("bench"));
    if (group.empty() || group.size() > 128) co_return dog::Response::text(400, "bad g\n");
    auto gid = env["GROUP"].id_from_name(group);
    if (path == "/group-id") co_return dog::Response::text(200, gid.hex());
    if (path != "/hit" && path != "/ws") co_return dog::Response::text(404, "no such route\n");
    std::string user(req.query_param("u").value_or(""));
    if (user.empty()) co_return dog::Response::text(400, "the u parameter must not be empty\n");
    auto stub = co_await dog::identify(gid, std::move(user), {env["GROUP"], env["ROOM"]});
    auto res = co_await stub.fetch(req);
    if (path == "/hit") {
      g_stats.hits++;
      auto where = res.headers.get("x-replica-node");
      if (where && *where != g_stats.node) g_stats.remote_hits++;
      if (!g_stats.groups.count(gid.hex())) g_stats.remote_groups++;
    }
    co_return res;
  });
  return app.run(argc, argv);
}
