// Cluster (cluster.h): SwimHost + ConnectionManager + RoutingTable on one loop.
//
// Flow of a membership event: Swim calls on_member_event() synchronously inside a packet or
// timer handler; we copy it into `pending_` and post ONE drain to the loop. The drain applies the
// batch to the RPC peers (add_peer / mark_dead / mark_alive), rebuilds the routing table from the
// Swim snapshot, settles joined(), and only then tells the Listener. So listeners always run
// from a fresh turn, after the table is current, and may call back into the Cluster.
#include "node/cluster/cluster.h"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <system_error>

#include <kj/debug.h>

#include "node/cluster/addr.h"
#include "node/cluster/cluster_impl.h"
#include "node/cluster/join.h"
#include "node/ops/log.h"
#include "node/swim/swim_host.h"

namespace dog::node::cluster {

using membership::EventKind;
using membership::MemberInfo;
using membership::MemberState;
using Kind = ClusterError::Kind;

namespace {

membership::Config preset_config(const std::string& p) {
  if (p == "lan") return membership::Config::lan();
  if (p == "wan") return membership::Config::wan();
  if (p == "local") return membership::Config::local();
  throw ClusterError(Kind::kBadOption, "--preset " + p + ": want lan, wan or local");
}

double weight_of(const membership::Meta& m) {
  return std::clamp<double>(m.capacity == 0 ? 1 : m.capacity, 1, routing::kMaxWeight);
}

}  // namespace

void Cluster::Impl::start() {
  if (host) throw ClusterError(Kind::kOther, "cluster already started");
  const auto keys = read_key_file(opts.key_file);
  membership::Config config = preset_config(opts.preset);

  std::string why;
  auto bind = resolve_host_port(opts.bind, &why);
  if (!bind) throw ClusterError(Kind::kBadOption, "--bind " + opts.bind + ": " + why);
  std::string advertise;
  if (!opts.advertise.empty()) {
    auto a = resolve_host_port(opts.advertise, &why);
    if (!a || a->port == 0)
      throw ClusterError(Kind::kBadOption, "--advertise " + opts.advertise + ": " +
                                               (a ? "port 0 cannot be dialled" : why));
    advertise = swim::format_ip_port(a->ip, a->port);
  } else if (bind->ip.is_unspecified()) {
    throw ClusterError(Kind::kBadOption, "--bind " + opts.bind +
                                             " listens on every interface: give --advertise "
                                             "HOST:PORT, the address peers dial");
  } else if (bind->port != 0) {
    advertise = swim::format_ip_port(bind->ip, bind->port);
  }
  name = !opts.name.empty() ? opts.name : advertise;
  if (name.empty())
    throw ClusterError(Kind::kBadOption, "--bind with port 0 needs --name or --advertise");
  if (name.size() > 64) throw ClusterError(Kind::kBadOption, "--name: at most 64 bytes");

  swim::SwimHostOptions so;
  so.config = config;
  so.name = name;
  so.bind_addr = swim::format_ip_port(bind->ip, bind->port);
  so.advertise_addr = advertise;
  so.key = keys[0];
  so.extra_keys.assign(keys.begin() + 1, keys.end());
  meta.rpc_addr = advertise;  // empty with port 0: peers then dial the member address
  meta.http_addr = opts.http_addr;
  meta.build_version = "dog 0.1.0";
  meta.load = want_load;  // a publish_load() before start()
  so.meta = meta;
  so.seed = rng.next() | 1;
  try {
    host = std::make_unique<swim::SwimHost>(io, so, this);
  } catch (const std::system_error& e) {
    throw ClusterError(Kind::kCannotBind, "cannot bind the cluster port " + so.bind_addr + ": " +
                                              e.code().message());
  } catch (const std::exception& e) {
    throw ClusterError(Kind::kBadOption, std::string("cluster: ") + e.what());
  }
  session = host->swim().config().session_id;

  rpc_keyring = std::make_unique<membership::Keyring>(keys[0]);
  for (size_t i = 1; i < keys.size(); ++i) rpc_keyring->install(keys[i]);
  rpc::ManagerConfig mc;
  mc.node_name = name;
  rpc = std::make_unique<rpc::ConnectionManager>(loop, *rpc_keyring, mc, local, rng);
  // Port sharing: TCP connections that do not start like a SWIM frame are RPC.
  host->transport().set_foreign_stream_handler([this, a = alive](asio::ip::tcp::socket s) {
    if (*a && rpc) rpc->accept(std::move(s));
  });
  host->start();
  rebuild();
  start_join();
}

// Quiet until joined, so a node that fails to join prints one line only; then one line about
// this node and the member count, and a member count at every change after that.
void Cluster::Impl::announce() {
  announced = true;
  ops::info("cluster_node",
            "cluster node " + name + " on " + host->addr() + " (session " + std::to_string(session) + ", preset " +
                opts.preset + ")",
            {{"node", name}, {"addr", host->addr()}, {"session", session}, {"preset", opts.preset}});
  ops::info("members", "cluster members " + std::to_string(live_names.size()), {{"members", live_names.size()}});
}

void Cluster::Impl::start_join() {
  join = std::make_unique<Joiner>(loop.io(), opts.join, opts.join_timeout,
                                  std::vector<std::string>{host->addr(), host->transport().local_addr()},
                                  [this](std::span<const std::string> seeds) { host->join(seeds); },
                                  [this] { return host->swim().num_live() > 1; },
                                  [this] { announce(); });
  join->start();
}

void Cluster::Impl::on_member_event(const membership::Event& e) {
  pending.push_back(Pending{e.kind, *e.member});
  post_drain();
}

void Cluster::Impl::on_self_state(MemberState state, uint64_t incarnation) {
  health_queue.push_back(state == MemberState::kAlive);
  ops::log(state == MemberState::kAlive ? ops::Level::kInfo : ops::Level::kWarn, "self_state",
           std::string("cluster peers see this node as ") + membership::to_string(state) + " (incarnation " +
               std::to_string(incarnation) + ")",
           {{"state", membership::to_string(state)}, {"incarnation", incarnation}});
  post_drain();
}

void Cluster::Impl::post_drain() {
  if (drain_posted) return;
  drain_posted = true;
  asio::post(loop.io(), [this, a = alive] {
    if (*a) drain();
  });
}

void Cluster::Impl::apply(const Pending& p, std::vector<std::pair<std::string, uint64_t>>& gone) {
  const MemberInfo& m = p.info;
  if (m.name == name) return;  // our own metadata updates
  Peer& peer = peers[m.name];
  const bool was_live = live(peer.state);
  const uint64_t s = m.session;
  switch (p.kind) {
    case EventKind::kJoin:
    case EventKind::kUpdate:
    case EventKind::kAlive:
    case EventKind::kSuspect: {
      if (was_live && s != 0 && peer.session != 0 && s != peer.session) {
        // A restart under the same name: the old process and its objects are gone.
        gone.emplace_back(m.name, peer.session);
        rpc->mark_dead(m.name);
      }
      const std::string& ra = m.meta.rpc_addr.empty() ? m.addr : m.meta.rpc_addr;
      if (auto ep = literal_endpoint(ra)) rpc->add_peer(m.name, *ep);
      if (!was_live || s != peer.session || p.kind == EventKind::kAlive) rpc->mark_alive(m.name);
      if (!was_live)
        ops::info("member_joined", "member " + m.name + " joined", {{"node", m.name}, {"addr", m.addr}});
      else if (p.kind == EventKind::kSuspect && peer.state != MemberState::kSuspect)
        ops::warn("member_suspected", "member " + m.name + " is suspected", {{"node", m.name}});
      else if (p.kind != EventKind::kSuspect && peer.state == MemberState::kSuspect)
        ops::info("member_alive", "member " + m.name + " is alive again", {{"node", m.name}});
      peer.session = s;
      peer.state = p.kind == EventKind::kSuspect ? MemberState::kSuspect : MemberState::kAlive;
      peer.load = m.meta.load;
      break;
    }
    case EventKind::kDead:
    case EventKind::kLeave:
      if (was_live) {
        gone.emplace_back(m.name, peer.session);
        const bool dead = p.kind == EventKind::kDead;
        ops::log(dead ? ops::Level::kWarn : ops::Level::kInfo, dead ? "member_dead" : "member_left",
                 "member " + m.name + (dead ? " is dead" : " left"), {{"node", m.name}});
      }
      rpc->mark_dead(m.name);
      peer.state = p.kind == EventKind::kDead ? MemberState::kDead : MemberState::kLeft;
      break;
  }
}

// Rebuilds the table from the Swim snapshot; true if the member set or a weight changed.
bool Cluster::Impl::rebuild() {
  routing::View view;
  std::vector<std::string> names;
  bool self_seen = false;
  for (const MemberInfo& m : host->swim().members()) {
    if (!live(m.state) && m.name != name) continue;
    self_seen |= m.name == name;
    view.members.push_back(routing::Member{m.name, weight_of(m.meta)});
    names.push_back(m.name);
  }
  if (!self_seen) {  // a node is always a member of its own view
    view.members.push_back(routing::Member{name, weight_of(meta)});
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  std::vector<double> old_weights, new_weights;
  if (table)
    for (uint32_t i = 0; i < table->member_count(); ++i) old_weights.push_back(table->weight(i));
  view.epoch = ++epoch;
  auto built = routing::RoutingTable::build(view);
  if (!built.table) {
    ops::warn("view_rejected", "cluster view rejected (" + built.message + "); keeping the previous one");
    return false;
  }
  table = std::move(*built.table);
  for (uint32_t i = 0; i < table->member_count(); ++i) new_weights.push_back(table->weight(i));
  const bool changed = names != live_names || old_weights != new_weights;
  live_names = std::move(names);
  return changed;
}

void Cluster::Impl::drain() {
  drain_posted = false;
  std::deque<Pending> batch;
  batch.swap(pending);
  std::vector<std::pair<std::string, uint64_t>> gone;
  for (const Pending& p : batch) apply(p, gone);
  const size_t before = live_names.size();
  const bool changed = rebuild() || !gone.empty();
  if (announced && changed && (live_names.size() != before || !gone.empty()))
    ops::info("members", "cluster members " + std::to_string(live_names.size()), {{"members", live_names.size()}});
  if (join) join->check();  // may announce()
  std::vector<bool> health;
  health.swap(health_queue);
  if (!listener) {
    if (!health.empty()) serving = health.back();
    return;
  }
  for (const auto& [node, s] : gone) listener->on_node_gone(node, s);
  if (changed) listener->on_view_change();
  // Every transition, even one undone within this batch (suspected, then refuted at once).
  for (bool v : health) {
    if (v == serving) continue;
    serving = v;
    listener->on_self_health(v);
  }
}

void Cluster::Impl::publish_now() {
  publish_armed = false;
  if (!host || meta.load == want_load) return;
  membership::Meta next = meta;
  next.load = want_load;
  if (host->swim().set_meta(next)) meta = next;
  last_publish = std::chrono::steady_clock::now();
}

}  // namespace dog::node::cluster
