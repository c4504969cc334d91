// dog::admin::AdminServer — the operator's endpoint (`--admin HOST:PORT`), on its own listener,
// apart from the app's URL space:
//
//   GET  /metrics   Prometheus text format 0.0.4 (admin_metrics.cc lists every family)
//   GET  /healthz   200 "ok" whenever the node's loop answers
//   GET  /readyz    200 "ready" when joined, the routing table is built and the node is not
//                   draining; else 503 and the reason ("starting", "joining the cluster",
//                   "no routing table", "draining") as the body
//   GET  /members   JSON: this node's view of the membership (name, address, state,
//                   incarnation, session, load, http address of each member)
//   GET  /objects   JSON: the objects live on this node (?ns=NAME: one namespace), at most
//                   ?limit=N (default 1000, 1..100000), "truncated": true when cut
//   GET  /where     JSON: ?ns=NAME&name=NAME (or &id=HEX): the id's owner and where it is live
//   POST /drain     starts the same drain as SIGTERM; 202
//   GET  /keys      JSON: this node's cluster keys by fingerprint, the primary first
//   POST /keys/install, /keys/use, /keys/remove   body: one base64 key; cluster key rotation on
//                   this node (Cluster::change_key); 409 when refused (not installed, primary)
//
// Any other path is 404; a known path with another method is 405 with Allow. GET paths accept
// HEAD. Query values are percent-decoded; a malformed one (or one not UTF-8) is a 400. There is no
// authentication: bind it to localhost or a private network (docs/operations.md).
//
// Contract: one AdminServer per node, on the node's Loop, outliving nothing it was given
// (runtime, cluster, front door are borrowed; set_* may be called at any time, e.g. once the
// cluster has joined). Not thread-safe.
#pragma once

#include <array>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "dog/dog.h"
#include "node/admin/probes.h"
#include "node/admin/rpc_timing.h"
#include "node/http/server.h"
#include "node/loop.h"
#include "node/runtime/runtime.h"

namespace dog::node::cluster {
class Cluster;
}

namespace dog::admin {

// Where the node is in its life, as /readyz reports it.
enum class Phase { kStarting, kJoining, kServing, kDraining };

// The admin listener's limits: a connection silent for kAdminTimeout (also before its first
// byte) or whose request head is not complete kAdminTimeout after its first byte is closed;
// connections past kAdminMaxConnections are accepted and closed at once.
inline constexpr std::chrono::milliseconds kAdminTimeout{3000};
inline constexpr size_t kAdminMaxConnections = 256;
// /objects answers at most ?limit=N objects: kObjectsLimit unless given, never above kObjectsMaxLimit.
inline constexpr size_t kObjectsLimit = 1000;
inline constexpr size_t kObjectsMaxLimit = 100000;

struct AdminOptions {
  std::chrono::milliseconds lag_interval{100};  // loop-lag timer period
};

class AdminServer {
 public:
  AdminServer(node::Loop& loop, Runtime& runtime, AdminOptions options = {});
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Null (the default): a single node, named "local" in answers; /members is empty and /where
  // answers from this node.
  void set_cluster(node::cluster::Cluster* cluster) { cluster_ = cluster; }
  // The app's front door, for its counters. Null: those metrics are absent.
  void set_front_door(const node::HttpServer* server) { front_door_ = server; }
  // What POST /drain runs (app.cc: the SIGTERM drain). Unset: 503.
  void set_drain(std::function<void()> drain) { drain_ = std::move(drain); }
  void set_phase(Phase p) { phase_ = p; }
  Phase phase() const { return phase_; }
  // Shared with the timing proxies (rpc_timing.h): around this node's wire::Node (calls it
  // serves), and around each peer's client (calls it makes, ConnectionManager's decorator).
  const std::shared_ptr<RpcMetrics>& rpc_metrics() const { return rpc_metrics_; }
  const std::shared_ptr<RpcMetrics>& rpc_client_metrics() const { return rpc_client_metrics_; }

  // Binds and serves. Throws std::system_error if the address cannot be bound.
  void listen(const asio::ip::tcp::endpoint& endpoint);
  asio::ip::tcp::endpoint local_endpoint() const;
  // Closes the listener (at once; admin requests are short).
  void close();

  // The request handler the listener runs (tests call it directly).
  Task<Response> handle(Request& req);
  // "" when ready, else the reason /readyz gives.
  std::string not_ready_reason() const;
  // The /metrics body.
  std::string render_metrics() const;

 private:
  // This node's name in answers: the member name, or "local" without a cluster.
  std::string node_name() const;
  Response members() const;
  Response objects(const Request& req) const;
  Task<Response> where(const Request& req);
  Response drain();
  Response keys(const Request& req);
  Json key_list() const;

  node::Loop& loop_;
  Runtime& runtime_;
  node::cluster::Cluster* cluster_ = nullptr;
  const node::HttpServer* front_door_ = nullptr;
  std::function<void()> drain_;
  Phase phase_ = Phase::kStarting;
  std::shared_ptr<RpcMetrics> rpc_metrics_ = std::make_shared<RpcMetrics>();
  std::shared_ptr<RpcMetrics> rpc_client_metrics_ = std::make_shared<RpcMetrics>();
  LoopLag lag_;
  std::unique_ptr<node::HttpServer> server_;
};

// `body` as a JSON answer. Strings that are not UTF-8 (a member name from the network) are
// written with U+FFFD in place of the bad bytes instead of throwing.
Response json_response(int status, const Json& body);

// The first 8 bytes of BLAKE2b(key), in hex: how answers name a key.
std::string key_fingerprint(const std::array<uint8_t, 32>& key);

// Percent-decodes a query value ('+' stays '+'); nullopt on a bad escape, a control character
// or a result that is not well-formed UTF-8.
std::optional<std::string> percent_decode(std::string_view in);

}  // namespace dog::admin
