// What a node does when membership changes: the directory (registrations with ids' owners, a
// previous owner's answer), hand-overs that merge two copies of a Group, re-assertion after this
// node refuted an accusation, and the rebuild of Groups whose node is gone (docs/cluster.md,
// "Joins", "At most one activation", "Failures").
#include <cstdio>
#include <map>

#include <kj/vector.h>

#include "node/kj_await.h"
#include "node/ops/log.h"
#include "node/runtime/peer_calls.h"
#include "node/runtime/relay.h"
#include "node/runtime/runtime.h"
#include "node/runtime/wire_util.h"

namespace dog {

using rpc::wire::Node;
using peer::kFireDeadline;
using peer::report_call;
using peer::retry_delay;
using peer::subscribe_call;

// ---- failover and the directory ------------------------------------------------------------

void Runtime::remember_route(const std::string& hex, const std::string& node) {
  if (routes_.size() >= kMaxRoutes) routes_.clear();  // bounded: a cache, rebuilt by use
  routes_[hex] = node;
}

void Runtime::unregister(const Namespace& ns, const std::string& hex) {
  auto id = wire::id_of(hex);
  if (!id) return;
  std::string owner = cluster_->owner(*id);
  if (owner == self_) return;
  std::string nsn = ns.name();
  fire(owner, [nsn, hex](Node::Client client) {
    auto req = client.registerActivationRequest();
    wire::set_ref(req.initTarget(), nsn, hex);
    req.setHost("");  // no longer live anywhere we know of
    return req.send().ignoreResult();
  });
}

bool Runtime::register_host(const std::string& hex, const std::string& host) {
  if (host.empty()) {
    directory_.erase(hex);  // the host evicted it
    return true;
  }
  if (host == self_) return true;
  if (known_host(hex) == self_) return false;  // two activations of a Group or any object: ours (the owner's) is kept
  directory_[hex] = host;
  return true;
}

void Runtime::retire_duplicate(Namespace& ns, const std::string& hex, const std::string& owner) {
  Class& c = class_of(ns);
  auto it = c.replicas.find(hex);
  if (it == c.replicas.end() || owner == self_) return;
  std::shared_ptr<Replica> rep = it->second;  // its sockets and requests keep it until they end
  c.replicas.erase(it);
  auto& st = *rep->state_;
  if (st.idle_timer) st.idle_timer->cancel();
  std::vector<std::shared_ptr<Socket>> sockets;
  for (auto& e : st.pool)
    for (auto& s : e.sockets) sockets.push_back(s);
  for (auto& s : sockets) s->close(1012, "duplicate activation retired");
  remember_route(hex, owner);
  ++stats_.duplicates_retired;
  ++stats_.evicted[ns.name()];
  if (cluster_) cluster_->publish_load(static_cast<uint32_t>(c.replicas.size()));
  ops::warn("duplicate_retired",
            "object " + hex.substr(0, 12) + " was live here and on its owner " + owner + ": ours retired, " +
                std::to_string(sockets.size()) + " sockets closed with 1012",
            {{"object", hex}, {"owner", owner}, {"sockets", sockets.size()}});
}

std::string Runtime::known_host(const std::string& hex) const {
  for (const auto& [name, cls] : classes_)
    if (cls.groups.count(hex) || cls.replicas.count(hex)) return self_;
  auto it = directory_.find(hex);
  return it == directory_.end() ? std::string() : it->second;
}

std::string Runtime::moved_to(const std::string& gid) const {
  if (!cluster_) return {};
  auto it = directory_.find(gid);
  if (it == directory_.end() || it->second == self_ || !cluster_->is_member(it->second)) return {};
  return it->second;
}

Task<std::string> Runtime::ask_previous_owner(const Namespace& ns, const std::string& hex) {
  auto id = wire::id_of(hex);
  if (!id || !cluster_) co_return std::string();
  auto ranked = cluster_->table().successors(*id, 2);
  if (ranked.size() < 2) co_return std::string();
  std::string prev(ranked[1].node_id);
  if (prev == self_) co_return std::string();
  std::string nsn = ns.name();
  auto p = cluster_->rpc().call(prev, 2 * kj::SECONDS, [nsn, hex](Node::Client client) {
    auto req = client.lookupRequest();
    wire::set_ref(req.initTarget(), nsn, hex);
    return req.send().then([](capnp::Response<Node::LookupResults> r) { return std::string(r.getHost()); });
  });
  try {
    std::string host = co_await node::await_kj(loop_, std::move(p));
    if (!host.empty() && cluster_->is_member(host)) co_return host;
  } catch (const node::KjError&) {
    // Unreachable or dead: nothing lives there that we could reach anyway.
  }
  co_return std::string();
}

void Runtime::hand_over_group(Namespace& group_ns, const std::string& gid, const std::string& to) {
  Class& gc = class_of(group_ns);
  auto it = gc.groups.find(gid);
  if (it == gc.groups.end() || to == self_) return;
  GroupHost& h = *it->second;
  if (h.identifying || h.inflight > 0 || !h.waiters.empty()) return;  // busy: the next view change retries
  std::string gns = group_ns.name(), cns = h.child ? h.child->name() : std::string();
  // The state goes over one connection in order; the merge is done when the receiver has taken
  // all of it (logged then: the end of a partition's effects, as the namespace tests read it).
  kj::Vector<kj::Promise<void>> sent;
  for (const auto& sid : h.core.replicas()) {
    auto n = h.replica_node.find(sid);
    std::string host = n == h.replica_node.end() ? self_ : n->second;
    int count = h.core.count(sid).value_or(0);
    auto rids = h.core.rids_of(sid);
    sent.add(cluster_->rpc().call(to, kFireDeadline, report_call(gns, cns, gid, sid, host, count, rids)));
  }
  for (const auto& [node, rids] : h.subscribers)
    for (const auto& [rid, n] : rids)  // absolute: the receiver may have counted them already
      sent.add(cluster_->rpc().call(to, kFireDeadline, subscribe_call(gns, gid, rid, node, n, /*absolute=*/true)));
  auto alive = alive_;
  kj::joinPromises(sent.releaseAsArray())
      .then(
          [gid, to]() {
            ops::info("group_handed_over", "group " + gid.substr(0, 12) + " handed over to " + to, {{"group", gid}, {"to", to}});
          },
          [this, alive, gid, to](kj::Exception&& e) {
            if (*alive) ++stats_.remote_errors;
            ops::warn("group_handover_failed",
                      "handing group " + gid.substr(0, 12) + " over to " + to + " failed: " + e.getDescription().cStr(),
                      {{"group", gid}, {"to", to}});
          })
      .detach([](kj::Exception&&) {});
  gc.groups.erase(it);
  directory_[gid] = to;
  for (auto& [name, cls] : classes_)
    if (!cls.is_group)
      for (auto& [sid, rep] : cls.replicas)
        if (rep->state_->gid == gid) rep->state_->group_node = to;
  if (auto c = clients_.find(gid); c != clients_.end()) c->second.group_node = to;
}

void Runtime::mark_rebuilding(GroupHost& h) {
  h.cast_all_until = std::chrono::steady_clock::now() + peer::kRebuildCastWindow;
}

void Runtime::group_rebuilt(Namespace& ns, const std::string& hex) { mark_rebuilding(group_host(ns, hex)); }

void Runtime::adopt_replica(Namespace& group_ns, const std::string& gid, const std::string& child_ns,
                            const std::string& sid, const std::string& host, int count,
                            const std::vector<std::string>& rids) {
  if (!find_group(gid)) {
    if (std::string to = moved_to(gid); !to.empty()) {  // handed over: the report goes there
      std::string gns = group_ns.name(), cns = child_ns;
      fire(to, report_call(gns, cns, gid, sid, host, count, rids));
      return;
    }
  }
  GroupHost& g = group_host(group_ns, gid);
  mark_rebuilding(g);
  g.core.adopt(sid, count, rids, g.obj->limit);
  g.replica_node[sid] = host;
}

void Runtime::view_changed() {
  if (!cluster_) return;
  // Objects live where they were activated; a joining node takes their ids' ownership, so it
  // learns where they are (the directory) instead of activating a second copy.
  for (auto& [name, cls] : classes_) {
    std::vector<std::string> ids;
    if (cls.is_group)
      for (auto& [hex, h] : cls.groups) ids.push_back(hex);
    else
      for (auto& [hex, r] : cls.replicas) ids.push_back(hex);
    for (const auto& hex : ids) {
      auto id = wire::id_of(hex);
      if (!id) continue;
      std::string owner = cluster_->owner(*id);
      if (owner == self_) continue;
      register_with_owner(*cls.ns, cls.is_group, hex, owner, 6);
    }
  }
}

void Runtime::register_with_owner(Namespace& ns, bool is_group, const std::string& hex, const std::string& owner,
                                  int attempts) {
  std::string nsn = ns.name(), self = self_;
  auto alive = alive_;
  Namespace* nsp = &ns;
  cluster_->rpc()
      .call(owner, kFireDeadline,
            [nsn, hex, self](Node::Client client) {
              auto req = client.registerActivationRequest();
              wire::set_ref(req.initTarget(), nsn, hex);
              req.setHost(self);
              return req.send().then([](capnp::Response<Node::RegisterActivationResults> r) {
                return r.getResult().isConflict();
              });
            })
      .then(
          [this, alive, is_group, nsp, hex, owner](bool conflict) {
            // Two activations (a partition healed, or a join raced an identify): the owner's
            // copy is kept; a Group of ours joins it, any other object of ours is retired.
            if (!*alive || !conflict) return;
            if (is_group) hand_over_group(*nsp, hex, owner);
            else retire_duplicate(*nsp, hex, owner);
          },
          [this, alive, is_group, nsp, hex, owner, attempts](kj::Exception&&) {
            // The owner may not have taken us back yet (a heal, a refutation): retry while the
            // object still lives here and the owner has not changed.
            if (!*alive || attempts <= 1) return;
            auto t = std::make_shared<asio::steady_timer>(loop_.io(), retry_delay(attempts));
            t->async_wait([this, alive, is_group, nsp, hex, owner, attempts, t](std::error_code ec) {
              if (ec || !*alive || !cluster_) return;
              auto id = wire::id_of(hex);
              if (!id || cluster_->owner(*id) != owner || known_host(hex) != self_) return;
              register_with_owner(*nsp, is_group, hex, owner, attempts - 1);
            });
          })
      .detach([](kj::Exception&&) {});
}

void Runtime::reassert() {
  if (!cluster_) return;
  // Objects this node holds whose ids others own: registered again (a copy made on the other
  // side of a partition is merged into the owner's).
  view_changed();
  // Replicas: their Group's node adopts them again with their current slots (no-op if it never
  // forgot them).
  for (auto& [name, cls] : classes_) {
    if (cls.is_group) continue;
    for (auto& [sid, rep] : cls.replicas) {
      auto& st = *rep->state_;
      if (st.gid.empty() || !st.parent_ns || st.group_node.empty() || st.group_node == self_) continue;
      std::vector<std::string> rids;
      int count = st.slots(&rids);
      std::string gns = st.parent_ns->name(), cns = name, gid = st.gid, self = self_, s = sid;
      fire_retry(st.group_node, report_call(gns, cns, gid, s, self, count, rids));
    }
  }
  // Client sockets: the exact count per request id, at each Group's node.
  for (auto& [gid, g] : clients_) {
    if (!g.group_ns || g.group_node.empty() || g.group_node == self_) continue;
    std::map<std::string, int> counts;
    for (const auto& c : g.clients) ++counts[c.rid];
    for (const auto& [rid, n] : counts) {
      std::string gns = g.group_ns->name(), self = self_, gidc = gid, r = rid;
      int count = n;
      fire_retry(g.group_node, subscribe_call(gns, gidc, r, self, count, /*absolute=*/true));
    }
  }
}

void Runtime::node_gone(const std::string& node) {
  if (!cluster_ || node == self_) return;
  std::erase_if(directory_, [&](const auto& kv) { return kv.second == node; });
  std::erase_if(routes_, [&](const auto& kv) { return kv.second == node; });
  // Groups here: Replicas that lived there are gone, and so are the sockets that node held.
  for (auto& [name, cls] : classes_) {
    if (!cls.is_group) continue;
    std::vector<std::pair<std::string, std::string>> lost;  // (gid, sid)
    for (auto& [gid, host] : cls.groups) {
      host->subscribers.erase(node);
      for (auto& [sid, n] : host->replica_node)
        if (n == node) lost.emplace_back(gid, sid);
    }
    for (auto& [gid, sid] : lost) forget_replica_at_group(*cls.ns, gid, sid);
  }
  // Client sockets relayed to Replicas there: closed with 1012 so clients reconnect anywhere.
  auto [b, e] = relays_.equal_range(node);
  std::vector<std::shared_ptr<EntryRelay>> doomed;
  for (auto it = b; it != e; ++it)
    if (auto r = it->second.lock()) doomed.push_back(r);
  relays_.erase(node);
  for (auto& r : doomed) {
    close_entry_relay(*r, 1012, "node gone");
    ++stats_.relays_closed_1012;
  }
  if (!doomed.empty())
    ops::info("relays_closed", std::to_string(doomed.size()) + " relays to " + node + " closed with 1012",
              {{"node", node}, {"count", doomed.size()}, {"code", 1012}});
  // Groups that lived there come back on their ids' new owners, rebuilt from the Replicas and
  // sockets here.
  for (auto& [name, cls] : classes_) {
    if (cls.is_group) continue;
    for (auto& [sid, rep] : cls.replicas) {
      auto& st = *rep->state_;
      if (st.group_node != node || st.gid.empty() || !st.parent_ns) continue;
      auto gid_id = wire::id_of(st.gid);
      if (!gid_id) continue;
      std::string owner = cluster_->owner(*gid_id);
      st.group_node = owner;
      std::vector<std::string> rids;
      int count = st.slots(&rids);
      ops::info("group_rebuilt", "group " + st.gid.substr(0, 12) + " of gone node " + node + " rebuilt on " + owner,
                {{"group", st.gid}, {"replica", sid}, {"owner", owner}, {"gone", node}});
      if (owner == self_) {
        adopt_replica(*st.parent_ns, st.gid, name, sid, self_, count, rids);
        continue;
      }
      std::string gns = st.parent_ns->name(), cns = name, gid = st.gid, self = self_, s = sid;
      fire_retry(owner, report_call(gns, cns, gid, s, self, count, rids));
    }
  }
  for (auto& [gid, g] : clients_) {
    if (g.group_node != node || !g.group_ns) continue;
    auto gid_id = wire::id_of(gid);
    if (!gid_id) continue;
    g.group_node = cluster_->owner(*gid_id);
    for (const auto& c : g.clients) {
      if (g.group_node == self_) {
        // The Group may not exist yet here: re-create it so the subscription lands.
        mark_rebuilding(group_host(*g.group_ns, gid));
        subscribe(gid, c.rid, self_, +1);
        continue;
      }
      std::string gns = g.group_ns->name(), rid = c.rid, self = self_, gidc = gid;
      fire_retry(g.group_node, subscribe_call(gns, gidc, rid, self, 1));
    }
  }
}

}  // namespace dog
