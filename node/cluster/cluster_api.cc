// Cluster's public methods (cluster.h) over Cluster::Impl (cluster_impl.h).
#include <asio/post.hpp>

#include <algorithm>

#include <kj/debug.h>

#include "node/cluster/cluster_impl.h"

namespace dog::node::cluster {

Cluster::Cluster(Loop& loop, ClusterOptions options, rpc::wire::Node::Client local,
                 Listener* listener)
    : impl_(std::make_unique<Impl>(loop, std::move(options), kj::mv(local), listener)) {}

Cluster::~Cluster() = default;

void Cluster::start() { impl_->start(); }

kj::Promise<void> Cluster::joined() {
  KJ_REQUIRE(impl_->join != nullptr, "Cluster::joined() before start()");
  return impl_->join->done();
}

void Cluster::leave(std::chrono::milliseconds deadline, std::function<void()> done) {
  Impl& d = *impl_;
  if (d.join) d.join->stop();
  if (!d.host) {
    asio::post(d.loop.io(), std::move(done));
    return;
  }
  const auto until = std::chrono::steady_clock::now() + deadline;
  if (d.leave_waiters.empty() || until < d.leave_until) d.leave_until = until;
  d.leave_waiters.push_back(std::move(done));
  if (d.leave_waiters.size() > 1) return;  // a leave is already under way
  d.host->leave();
  asio::post(d.loop.io(), [&d, a = d.alive] {
    if (*a) d.leave_tick();
  });
}

// Polls Swim::leave_done() (the core has no completion callback) every 20 ms until the `left`
// update has been gossiped for Config::leave_propagate, or the earliest deadline passes.
void Cluster::Impl::leave_tick() {
  if (!host->leave_done() && std::chrono::steady_clock::now() < leave_until) {
    leave_timer.expires_after(std::chrono::milliseconds(20));
    leave_timer.async_wait([this, a = alive](std::error_code ec) {
      if (!ec && *a) leave_tick();
    });
    return;
  }
  auto waiters = std::move(leave_waiters);
  leave_waiters.clear();
  for (auto& f : waiters)
    if (f) f();
}

const std::string& Cluster::self() const { return impl_->name; }
uint64_t Cluster::session() const { return impl_->session; }
const std::string& Cluster::address() const {
  KJ_REQUIRE(impl_->host != nullptr, "Cluster::address() before start()");
  return impl_->host->addr();
}

std::string Cluster::owner(const routing::ObjectId& id) const {
  return std::string(table().owner(id).node_id);
}

const routing::RoutingTable& Cluster::table() const {
  KJ_REQUIRE(impl_->table.has_value(), "Cluster used before start()");
  return *impl_->table;
}

std::vector<std::string> Cluster::members() const { return impl_->live_names; }

bool Cluster::is_member(const std::string& node) const {
  return std::binary_search(impl_->live_names.begin(), impl_->live_names.end(), node);
}

std::optional<uint64_t> Cluster::session_of(const std::string& node) const {
  if (node == impl_->name) return impl_->session;
  auto it = impl_->peers.find(node);
  if (it == impl_->peers.end() || !live(it->second.state)) return std::nullopt;
  return it->second.session;
}

void Cluster::publish_load(uint32_t replicas) {
  Impl& d = *impl_;
  d.want_load = replicas;
  if (!d.host || d.publish_armed || d.meta.load == replicas) return;
  const auto next = d.last_publish + std::chrono::seconds(1);
  if (std::chrono::steady_clock::now() >= next) {
    d.publish_now();
    return;
  }
  d.publish_armed = true;
  d.publish_timer.expires_at(next);
  d.publish_timer.async_wait([&d, a = d.alive](std::error_code ec) {
    if (!ec && *a) d.publish_now();
  });
}

uint32_t Cluster::load_of(const std::string& node) const {
  if (node == impl_->name) return impl_->meta.load;
  auto it = impl_->peers.find(node);
  return it == impl_->peers.end() ? 0 : it->second.load;
}

swim::SwimHost& Cluster::swim_host() {
  KJ_REQUIRE(impl_->host != nullptr, "Cluster::swim_host() before start()");
  return *impl_->host;
}

rpc::ConnectionManager& Cluster::rpc() {
  KJ_REQUIRE(impl_->rpc != nullptr, "Cluster::rpc() before start()");
  return *impl_->rpc;
}

}  // namespace dog::node::cluster
