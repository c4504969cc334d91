// dog::App — registers classes, parses flags and serves them on one node.
#include <CLI/CLI.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "node/http/server.h"
#include "node/ops/config.h"
#include "node/ops/log.h"
#include "node/runtime/runtime.h"
#ifdef DOG_WITH_CLUSTER
#include "node/cluster/cluster.h"
#include "node/cluster/options.h"
#include "node/admin/admin.h"
#endif

namespace dog {

struct App::Impl {
  CLI::App cli{"a dog node"};
  std::string http = "127.0.0.1:8080";
  int64_t max_body_kib = 1024;
  size_t max_connections = node::HttpConfig::defaults().max_connections;
  int64_t drain_timeout_s = 10;
  int64_t drain_grace_s = 0;
  ops::OpsFlags ops;  // --config, --print-config, --log-level, --log-format (node/ops/config.h)
  std::vector<std::pair<std::string, std::function<std::shared_ptr<Group>()>>> groups;
  std::vector<std::pair<std::string, std::function<std::shared_ptr<Replica>()>>> replicas;
#ifdef DOG_WITH_CLUSTER
  node::cluster::ClusterFlags cluster;  // --bind, --join, ... and `keygen` (node/cluster/options.h)
  std::string admin;                    // --admin HOST:PORT (node/admin/); off when empty
#endif
};

#ifdef DOG_WITH_CLUSTER
namespace {
// The runtime's view of the real cluster, and the cluster's events into the runtime.
class ClusterAdapter final : public ClusterPort, public node::cluster::Listener {
 public:
  explicit ClusterAdapter(Runtime& rt) : rt_(rt) {}
  void attach(node::cluster::Cluster* c) {
    cluster_ = c;
    rt_.set_cluster(this);
  }

  const std::string& self() const override { return cluster_->self(); }
  std::string owner(const routing::ObjectId& id) const override { return cluster_->owner(id); }
  const routing::RoutingTable& table() const override { return cluster_->table(); }
  std::vector<std::string> members() const override { return cluster_->members(); }
  bool is_member(const std::string& n) const override { return cluster_->is_member(n); }
  uint32_t load_of(const std::string& n) const override { return cluster_->load_of(n); }
  void publish_load(uint32_t r) override { cluster_->publish_load(r); }
  rpc::ConnectionManager& rpc() override { return cluster_->rpc(); }

  void on_view_change() override {
    if (cluster_) rt_.view_changed();
  }
  void on_node_gone(const std::string& node, uint64_t) override {
    if (!cluster_) return;
    ops::warn("member_gone", "node " + node + " is gone; its relays close with 1012, its Groups move", {{"node", node}});
    rt_.node_gone(node);
  }
  void on_self_health(bool serving) override {
    ops::log(serving ? ops::Level::kInfo : ops::Level::kWarn, serving ? "self_alive" : "self_suspected",
             std::string("this node is ") + (serving ? "alive again" : "suspected") + " by its peers");
    // Peers may have declared us dead meanwhile and forgotten our Replicas and sockets.
    if (serving && cluster_) rt_.reassert();
  }

 private:
  Runtime& rt_;
  node::cluster::Cluster* cluster_ = nullptr;
};
}  // namespace
#endif

App::App() : impl_(std::make_unique<Impl>()) {
  impl_->cli.add_option("--http", impl_->http, "HOST:PORT to serve HTTP and WebSockets on")
      ->capture_default_str();
  impl_->cli.add_option("--max-body-kib", impl_->max_body_kib, "largest request body accepted, KiB")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  impl_->cli.add_option("--max-connections", impl_->max_connections,
                        "open HTTP connections and WebSockets on this node; more are accepted and closed at once")
      ->check(CLI::Range(size_t{1}, size_t{10'000'000}))
      ->capture_default_str();
  impl_->cli.add_option("--max-objects", config.max_live_objects,
                        "live Groups (or Replicas) per namespace on this node; more are refused with 503")
      ->check(CLI::Range(size_t{1}, size_t{100'000'000}))
      ->capture_default_str();
  impl_->cli.add_option("--drain-timeout", impl_->drain_timeout_s,
                        "seconds SIGTERM/SIGINT may take: leave the cluster, close WebSockets with 1001, finish requests")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  impl_->cli.add_option("--drain-grace-s", impl_->drain_grace_s,
                        "seconds a drain keeps serving with /readyz 503 before it starts, so health checks take "
                        "the node out first (the stop then takes up to this plus --drain-timeout)")
      ->check(CLI::Range(0, 600))
      ->capture_default_str();
#ifdef DOG_WITH_CLUSTER
  node::cluster::add_cluster_flags(impl_->cli, impl_->cluster);
  impl_->cli.add_option("--admin", impl_->admin,
                        "HOST:PORT for the admin endpoint (/metrics /healthz /readyz /members /objects /where "
                        "/drain); off unless given, no authentication: keep it on localhost or a private network");
#endif
  ops::add_ops_flags(impl_->cli, impl_->ops);
}

App::~App() = default;

CLI::App& App::cli() { return impl_->cli; }

void App::add_group(std::string binding, std::function<std::shared_ptr<Group>()> make) {
  impl_->groups.emplace_back(std::move(binding), std::move(make));
}

void App::add_replica(std::string binding, std::function<std::shared_ptr<Replica>()> make) {
  impl_->replicas.emplace_back(std::move(binding), std::move(make));
}

int App::run(int argc, char** argv) {
#ifdef DOG_WITH_CLUSTER
  node::cluster::add_env_names(impl_->cli);  // every flag also reads DOG_<NAME>
#endif
  ops::capture_defaults(impl_->cli);  // for --print-config
  try {
    impl_->cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return impl_->cli.exit(e);
  }
  // --config FILE under DOG_* and flags, the log settings, --print-config.
  if (auto rc = ops::finish_config(impl_->cli, impl_->ops)) return *rc;
#ifdef DOG_WITH_CLUSTER
  if (node::cluster::keygen_requested(impl_->cluster)) {
    std::printf("%s\n", node::cluster::generate_key().c_str());
    return 0;
  }
  std::optional<node::cluster::ClusterOptions> cluster_options;
  try {
    const std::string program = argc > 0 ? std::filesystem::path(argv[0]).filename().string() : "APP";
    cluster_options = node::cluster::cluster_options_from(impl_->cluster, impl_->http, program);
  } catch (const node::cluster::ClusterError& e) {
    ops::error("config_refused", e.what());
    return 2;
  }
#endif
  if (!fetch_) {
    ops::error("config_refused", "no request handler set (call app.fetch(...) before run)");
    return 2;
  }
  asio::ip::tcp::endpoint endpoint;
  try {
    endpoint = node::parse_endpoint(impl_->http);
  } catch (const std::exception& e) {
    ops::error("config_refused", std::string("--http: ") + e.what(), {{"key", "http"}});
    return 2;
  }

  node::Loop loop;
  Runtime runtime(loop, config);
  for (auto& [name, make] : impl_->groups) runtime.add_group(name, make);
  for (auto& [name, make] : impl_->replicas) runtime.add_replica(name, make);
#ifdef DOG_WITH_CLUSTER
  // Joins before serving: a node that cannot bind, read its key or join exits with one line.
  ClusterAdapter adapter(runtime);
  std::unique_ptr<node::cluster::Cluster> cluster;
  std::unique_ptr<admin::AdminServer> admin;  // destroyed before the cluster it inspects
  if (!impl_->admin.empty()) {  // serves (health, readiness "joining") while the node joins
    admin = std::make_unique<admin::AdminServer>(loop, runtime);
    try {
      admin->listen(node::parse_endpoint(impl_->admin));
    } catch (const std::exception& e) {
      ops::error("cannot_listen", "cannot serve --admin " + impl_->admin + ": " + e.what(), {{"admin", impl_->admin}});
      return 1;
    }
  }
  if (cluster_options) {
    auto service = runtime.make_service();  // with --admin, timed per method (node/admin/rpc_timing.h)
    if (admin) service = admin::timed(kj::mv(service), admin->rpc_metrics());
    cluster = std::make_unique<node::cluster::Cluster>(loop, *cluster_options, kj::mv(service), &adapter);
    try {
      cluster->start();
      if (admin) {
        admin->set_cluster(cluster.get());
        admin->set_phase(admin::Phase::kJoining);
        cluster->rpc().set_client_decorator(  // times the calls this node makes, per method
            [m = admin->rpc_client_metrics()](rpc::wire::Node::Client c) { return admin::timed(kj::mv(c), m); });
      }
      cluster->joined().wait(loop.wait_scope());
      adapter.attach(cluster.get());
    } catch (const node::cluster::ClusterError& e) {
      using Kind = node::cluster::ClusterError::Kind;
      ops::error(e.kind() == Kind::kCannotBind ? "cannot_bind" : "config_refused", e.what());
      return e.kind() == Kind::kCannotBind ? 1 : 2;  // 2: fix the configuration
    } catch (const kj::Exception& e) {  // joined() rejected: no seed answered
      ops::error("join_failed", e.getDescription().cStr());
      return 1;
    }
  }
#endif

  auto http_config = node::HttpConfig::defaults();
  http_config.max_body_bytes = static_cast<size_t>(impl_->max_body_kib) << 10;
  http_config.max_connections = impl_->max_connections;
  Fetch handler = fetch_;
  node::HttpServer server(loop, http_config, [&runtime, handler](Request& req) -> Task<Response> {
    // The boundary where user errors become statuses; nothing below it can take the node down.
    try {
      co_return co_await handler(req, runtime.env());
    } catch (const HttpError& e) {
      co_return Response::text(e.status(), std::string(e.what()) + "\n");
    } catch (const BadId& e) {
      co_return Response::text(400, std::string(e.what()) + "\n");
    } catch (const std::exception& e) {
      ops::error("request_failed", "request " + req.method + " " + req.target + " failed: " + e.what(),
                 {{"method", req.method}, {"target", req.target}});
      co_return Response::text(500, "internal error\n");
    }
  });
  try {
    server.listen(endpoint);
  } catch (const std::exception& e) {
    ops::error("cannot_listen", "cannot listen on " + impl_->http + ": " + e.what(), {{"http", impl_->http}});
    return 1;
  }
  // The drain, after --drain-grace-s (0 by default): leave the membership (peers stop routing
  // here and rebuild the Groups this node hosted from their own Replicas, docs/cluster.md), stop
  // accepting, let in-flight requests finish, close WebSockets with 1001; exit 0 when both are
  // done or at the deadline.
  asio::signal_set signals(loop.io(), SIGINT, SIGTERM);
  asio::steady_timer drain_deadline(loop.io());
  asio::steady_timer drain_grace(loop.io());
  int drain_pending = 0;
  bool draining = false;
  auto run_drain = [&] {
    const auto budget = std::chrono::seconds(impl_->drain_timeout_s);
    drain_deadline.expires_after(budget);
    drain_deadline.async_wait([&](std::error_code e) {
      if (e) return;
      ops::warn("drain_deadline", "drain deadline reached; exiting");
      loop.stop();
    });
    auto step_done = [&] {
      if (--drain_pending == 0) {
        ops::info("drained", "drained");
        loop.stop();
      }
    };
    drain_pending = 1;
#ifdef DOG_WITH_CLUSTER
    if (cluster) {
      ++drain_pending;
      cluster->leave(std::min<std::chrono::milliseconds>(budget / 2, std::chrono::seconds(3)), step_done);
    }
#endif
    server.shutdown(budget * 8 / 10, step_done);
  };
  // SIGTERM, SIGINT or the admin endpoint's POST /drain: /readyz turns 503 at once; with
  // --drain-grace-s the node keeps serving (and stays a member) that long, then drains.
  auto start_drain = [&] {
    if (draining) return;
    draining = true;
#ifdef DOG_WITH_CLUSTER
    if (admin) admin->set_phase(admin::Phase::kDraining);
#endif
    const std::string msg = "draining (at most " + std::to_string(impl_->drain_timeout_s) + " s)";
    if (impl_->drain_grace_s == 0) {
      ops::info("draining", msg, {{"timeout_s", impl_->drain_timeout_s}});
      return run_drain();
    }
    ops::info("draining", msg + " after a " + std::to_string(impl_->drain_grace_s) + " s grace",
              {{"timeout_s", impl_->drain_timeout_s}, {"grace_s", impl_->drain_grace_s}});
    drain_grace.expires_after(std::chrono::seconds(impl_->drain_grace_s));
    drain_grace.async_wait([&](std::error_code e) {
      if (!e) run_drain();
    });
  };
  signals.async_wait([&](std::error_code ec, int) {
    if (!ec) start_drain();
  });
#ifdef DOG_WITH_CLUSTER
  if (admin) {
    admin->set_front_door(&server);
    admin->set_drain(start_drain);
    admin->set_phase(admin::Phase::kServing);
    ops::info("admin", "admin endpoint on http://" + impl_->admin, {{"admin", impl_->admin}});
  }
#endif
  ops::info("serving", "serving on http://" + impl_->http, {{"http", impl_->http}});
  loop.run();
  return 0;
}

}  // namespace dog
