// The runtime's calls to other nodes: identify and fetch routed to where objects live, casts
// (broadcast, whisper) through the Group's node, socket subscriptions and slot releases. What a
// node does when membership changes is failover.cc; the serving side is service.cc; relays are
// relay.cc.
#include <algorithm>
#include <capnp/message.h>
#include <cstdio>

#include "node/kj_await.h"
#include "node/ops/log.h"
#include "node/runtime/peer_calls.h"
#include "node/runtime/relay.h"
#include "node/runtime/runtime.h"
#include "node/runtime/wire_util.h"
#include "routing/placement.h"

namespace dog {

using rpc::wire::Node;
using peer::kCallDeadline;
using peer::kFireDeadline;
using peer::subscribe_call;

namespace {
const routing::IdNamespace& keys_of(const std::shared_ptr<const void>& p) {
  return *static_cast<const routing::IdNamespace*>(p.get());
}
}  // namespace

// ---- routing -------------------------------------------------------------------------------

std::string Runtime::locate(const Namespace& ns, const std::string& hex) const {
  if (!cluster_) return self_;
  const Class& c = class_of(ns);
  if (c.groups.count(hex) || c.replicas.count(hex)) return self_;
  if (auto it = directory_.find(hex); it != directory_.end() && cluster_->is_member(it->second)) return it->second;
  if (auto it = routes_.find(hex); it != routes_.end() && cluster_->is_member(it->second)) return it->second;
  auto id = wire::id_of(hex);
  return id ? cluster_->owner(*id) : self_;
}

ObjectId Runtime::place_new(const Namespace& child) const {
  auto load = [this](const routing::Owner& o) { return double(cluster_->load_of(std::string(o.node_id))); };
  auto id = routing::place_new(keys_of(child.keys_), cluster_->table(), load);
  return ObjectId(id.to_string());
}

Runtime::GroupHost* Runtime::find_group(const std::string& gid) {
  for (auto& [name, cls] : classes_) {
    if (!cls.is_group) continue;
    if (auto it = cls.groups.find(gid); it != cls.groups.end()) return it->second.get();
  }
  return nullptr;
}


// ---- identify and fetch --------------------------------------------------------------------

Task<Runtime::IdentifyAnswer> Runtime::identify_remote(const std::string& node, const Family& family,
                                                       const std::string& gid, const std::string& rid) {
  std::string gns = family.parent.name(), cns = family.child.name(), self = self_;
  auto p = cluster_->rpc().call(node, kCallDeadline, [gns, cns, gid, rid, self](Node::Client client) {
    auto req = client.identifyGroupRequest();
    wire::set_ref(req.initGroup(), gns, gid);
    req.setRequestId(rid);
    req.setChild(cns);
    req.setCaller(self);
    return req.send().then([](capnp::Response<Node::IdentifyGroupResults> r) {
      auto res = r.getResult();
      IdentifyAnswer a;
      if (res.isReplica()) {
        a.sid = wire::hex_of(res.getReplica().getId());
        a.node = res.getReplica().getNode();
      } else if (res.isNotHere()) {
        a.not_here = res.getNotHere().getOwnerHint();
        if (a.not_here.empty()) throw HttpError(503, "group unavailable");
      } else {
        auto e = res.getError();
        throw HttpError(e.getStatus(), e.getMessage());
      }
      return a;
    });
  });
  try {
    co_return co_await node::await_kj(loop_, std::move(p));
  } catch (const node::KjError& e) {
    // HttpError thrown inside the KJ continuation arrives as a FAILED KjError: keep its status.
    ++stats_.remote_errors;
    std::string what = e.what();
    throw HttpError(503, "group on node " + node + " unavailable: " + what.substr(0, 200));
  }
}

Task<Runtime::FetchOutcome> Runtime::fetch_remote(const std::string& node, Namespace& ns, const std::string& hex,
                                                  Request& req, std::shared_ptr<Stub::Identity> route) {
  std::shared_ptr<EntryRelay> relay;
  if (req.is_websocket_upgrade()) relay = make_entry_relay(*this, route);
  struct Out {
    FetchOutcome fo;
    std::optional<rpc::wire::WsSink::Client> socket;
  };
  std::string ns_name = ns.name();
  Request copy = req;
  auto p = cluster_->rpc().call(node, kCallDeadline, [ns_name, hex, copy, route, relay](Node::Client client) {
    auto r = client.deliverRequest();
    wire::set_ref(r.initTarget(), ns_name, hex);
    wire::set_head(r.initHead(), copy);
    r.setBody(wire::bytes_of(copy.body));
    if (route) {
      auto rt = r.initRoute();
      rt.setRequestId(route->rid);
      rt.setGroup(wire::bytes_of_hex(route->gid));
      rt.setGroupNode(route->group_node);
      rt.setGroupNs(route->group_ns ? route->group_ns->name() : std::string());
    }
    if (relay) r.setToClient(make_client_sink(relay));
    return r.send().then([](capnp::Response<Node::DeliverResults> resp) {
      Out o;
      auto res = resp.getResult();
      if (res.isNotOwner()) {
        o.fo.not_here = res.getNotOwner().getOwnerHint();
        if (o.fo.not_here.empty()) o.fo.response = Response::text(503, "object unavailable\n");
        return o;
      }
      auto r2 = res.getResponse();
      auto headers = r2.getHead().getHeaders();
      if (headers.size() > wire::kMaxRelayedHeaders) {  // a peer's list is bounded like a request's
        o.fo.response = Response::text(502, "the object's response has too many headers\n");
        return o;
      }
      o.fo.response.status = r2.getHead().getStatus();
      for (auto h : headers) o.fo.response.headers.add(h.getName(), h.getValue());
      auto b = r2.getBody();
      o.fo.response.body.assign(reinterpret_cast<const char*>(b.begin()), b.size());
      if (r2.hasSocket()) o.socket = r2.getSocket();
      return o;
    });
  });
  Out o;
  try {
    o = co_await node::await_kj(loop_, std::move(p));
  } catch (const node::KjError& e) {
    ++stats_.remote_errors;
    ops::warn("fetch_failed", "fetch on " + node + " failed: " + e.what(), {{"node", node}});
    FetchOutcome f;
    f.response = Response::text(503, "object unavailable: node " + node + " did not answer\n");
    f.response.headers.set("Retry-After", "1");
    co_return f;
  }
  if (o.fo.not_here.empty() && relay) {
    if (o.socket && o.fo.response.status == 101) {
      bind_entry_relay(*relay, std::move(*o.socket), node);
      track_relay(node, relay);
      co_await attach_entry_relay(*this, relay);
      o.fo.response = Response::accept_websocket(as_handler(relay));
    } else {
      abandon_entry_relay(*relay);
    }
  }
  co_return std::move(o.fo);
}

void Runtime::track_relay(const std::string& node, const std::shared_ptr<EntryRelay>& r) {
  // Drop entries whose relay is gone, so the map stays as large as the live relays.
  for (auto it = relays_.lower_bound(node); it != relays_.end() && it->first == node;)
    it = it->second.expired() ? relays_.erase(it) : std::next(it);
  relays_.emplace(node, r);
}

// ---- slots, peers, gossip ------------------------------------------------------------------

void Runtime::release_slot(Namespace& group_ns, const std::string& gid, const std::string& group_node,
                           const std::string& sid, const std::string& rid, bool empty) {
  std::string to = group_node;
  if (!cluster_ || to == self_ || to.empty()) {
    to = find_group(gid) ? std::string() : moved_to(gid);  // handed over: forward
    if (to.empty()) {
      if (rid.empty() && empty) forget_replica_at_group(group_ns, gid, sid);
      else group_close(group_ns, gid, sid, rid, empty);
      return;
    }
  }
  std::string gns = group_ns.name();
  fire(to, [gns, gid, sid, rid, empty](Node::Client client) {
    auto req = client.releaseSlotRequest();
    wire::set_ref(req.initGroup(), gns, gid);
    req.setReplica(wire::bytes_of_hex(sid));
    req.setRequestId(rid);
    req.setEmpty(empty);
    return req.send().ignoreResult();
  });
}

void Runtime::forget_replica_at_group(Namespace& group_ns, const std::string& gid, const std::string& sid) {
  Class& gc = class_of(group_ns);
  auto it = gc.groups.find(gid);
  if (it == gc.groups.end()) return;
  it->second->core.forget(sid);
  it->second->replica_node.erase(sid);
  maybe_evict_group(group_ns, gid);
}

std::vector<std::pair<std::string, std::string>> Runtime::group_peers(Namespace& group_ns, const std::string& gid,
                                                                      const std::string& sid) {
  std::vector<std::pair<std::string, std::string>> out;
  Class& gc = class_of(group_ns);
  auto it = gc.groups.find(gid);
  if (it == gc.groups.end()) return out;
  for (const auto& other : it->second->core.replicas()) {
    if (other == sid) continue;
    auto n = it->second->replica_node.find(other);
    out.emplace_back(other, n == it->second->replica_node.end() ? self_ : n->second);
  }
  return out;
}

Task<std::vector<std::pair<std::string, std::string>>> Runtime::fetch_peers(Namespace& group_ns,
                                                                            const std::string& gid,
                                                                            const std::string& group_node,
                                                                            const std::string& sid) {
  if (!cluster_ || group_node == self_ || group_node.empty()) co_return group_peers(group_ns, gid, sid);
  std::string gns = group_ns.name();
  auto p = cluster_->rpc().call(group_node, kFireDeadline, [gns, gid, sid](Node::Client client) {
    auto req = client.peersRequest();
    wire::set_ref(req.initGroup(), gns, gid);
    req.setReplica(wire::bytes_of_hex(sid));
    return req.send().then([](capnp::Response<Node::PeersResults> r) {
      std::vector<std::pair<std::string, std::string>> out;
      for (auto p : r.getPeers()) out.emplace_back(wire::hex_of(p.getId()), p.getNode());
      return out;
    });
  });
  co_return co_await node::await_kj(loop_, std::move(p));
}

Task<Json> Runtime::gossip_remote(const std::string& node, Namespace& child, const std::string& sid, const Json& msg,
                                  std::chrono::milliseconds deadline) {
  std::string cns = child.name(), payload = msg.dump();
  auto p = cluster_->rpc().call(node, deadline.count() * kj::MILLISECONDS, [cns, sid, payload](Node::Client client) {
    auto req = client.gossipRequest();
    wire::set_ref(req.initGroup(), cns, sid);
    req.setTopic("dog.gossip");
    req.setPayload(wire::bytes_of(payload));
    return req.send().then([](capnp::Response<Node::GossipResults> r) {
      auto d = r.getReply();
      return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
    });
  });
  std::string reply = co_await node::await_kj(loop_, std::move(p));
  co_return Json::parse(reply);  // a peer node is authenticated; a parse error is its result
}

// ---- casts: broadcast and whisper through the Group's node ---------------------------------

void Runtime::send_cast(const std::string& gid, const std::string& group_node, Namespace& group_ns,
                        rpc::wire::CastKind kind, const std::string& sender, bool self_too, const std::string& target,
                        const std::string& body) {
  std::string gns = group_ns.name();
  auto fill = [&](rpc::wire::GroupCast::Builder c) {
    wire::set_ref(c.initGroup(), gns, gid);
    c.setKind(kind);
    c.setSender(sender);
    c.setSelf(self_too);
    c.setTarget(target);
    c.setBody(body);
  };
  if (!cluster_ || group_node == self_ || group_node.empty()) {
    capnp::MallocMessageBuilder msg;
    auto c = msg.initRoot<rpc::wire::GroupCast>();
    fill(c);
    group_cast(gid, c.asReader());
    return;
  }
  ++stats_.casts_sent;
  fire(group_node, [gns, gid, kind, sender, self_too, target, body](Node::Client client) {
    auto req = client.groupCastRequest();
    auto c = req.initCast();
    wire::set_ref(c.initGroup(), gns, gid);
    c.setKind(kind);
    c.setSender(sender);
    c.setSelf(self_too);
    c.setTarget(target);
    c.setBody(body);
    return req.send().ignoreResult();
  });
}

void Runtime::group_cast(const std::string& gid, rpc::wire::GroupCast::Reader cast) {
  GroupHost* host = find_group(gid);
  bool to_all = host && cluster_ && std::chrono::steady_clock::now() < host->cast_all_until;
  if (!host) {
    // Handed over: forward to where it went (once; the new node hosts it).
    if (std::string to = moved_to(gid); !to.empty()) {
      auto copy = kj::heap<capnp::MallocMessageBuilder>();
      copy->setRoot(cast);
      auto* raw = copy.get();
      ++stats_.casts_sent;
      fire(to, [raw, held = kj::mv(copy)](Node::Client client) mutable {
        auto req = client.groupCastRequest();
        req.setCast(raw->getRoot<rpc::wire::GroupCast>().asReader());
        return req.send().ignoreResult();
      });
      return;
    }
    // The id is ours but its Group is not here yet: its old node died and the survivors'
    // reports are in flight. Every member delivers to the sockets it holds. Otherwise nobody
    // holds its sockets.
    auto id = wire::id_of(gid);
    if (!cluster_ || !id || cluster_->owner(*id) != self_) return;
    to_all = true;
  }
  const bool whisper = cast.getKind() == rpc::wire::CastKind::WHISPER;
  std::string target = cast.getTarget();
  std::vector<std::string> nodes;
  if (to_all) {
    nodes = cluster_->members();
    if (std::find(nodes.begin(), nodes.end(), self_) == nodes.end()) nodes.push_back(self_);
    ++stats_.casts_to_all;
  } else {
    for (const auto& [node, rids] : host->subscribers)
      if (!whisper || rids.count(target)) nodes.push_back(node);
  }
  for (const auto& node : nodes) {
    if (!cluster_ || node == self_) {
      deliver_cast(cast);
      continue;
    }
    ++stats_.casts_sent;
    auto copy = kj::heap<capnp::MallocMessageBuilder>();
    copy->setRoot(cast);
    auto held = kj::mv(copy);
    auto* raw = held.get();
    fire(node, [raw, held = kj::mv(held)](Node::Client client) mutable {
      auto req = client.deliverCastRequest();
      req.setCast(raw->getRoot<rpc::wire::GroupCast>().asReader());
      return req.send().ignoreResult();
    });
  }
}

void Runtime::deliver_cast(rpc::wire::GroupCast::Reader cast) {
  auto it = clients_.find(wire::hex_of(cast.getGroup().getId()));
  if (it == clients_.end()) return;
  const auto kind = cast.getKind();
  if (kind != rpc::wire::CastKind::BROADCAST && kind != rpc::wire::CastKind::WHISPER) return;
  std::string sender = cast.getSender(), target = cast.getTarget();
  auto body = cast.getBody();
  std::string_view text(body.begin(), body.size());
  bool self_too = cast.getSelf();
  // Encoded once for every recipient on this node: each socket's queue takes a reference.
  const http::SharedFrames frames = http::make_frames(text, true);
  const std::string gid = it->first;  // a copy: a send may close the last socket and erase the entry
  // The recipients (and the sender's own sockets here) are resolved first, because a send may
  // close a socket, which edits the list. Copying the list instead cost a string allocation per
  // recipient, the largest item in a saturated node's profile.
  struct Target {
    std::shared_ptr<Socket> local;
    std::shared_ptr<EntryRelay> relay;
    bool hit, sender;
  };
  std::vector<Target> targets;
  targets.reserve(it->second.clients.size());
  const bool whisper = kind == rpc::wire::CastKind::WHISPER;
  for (const auto& c : it->second.clients) {
    const bool is_sender = c.rid == sender;
    const bool hit = whisper ? c.rid == target : (self_too || !is_sender);
    if (!hit && !is_sender) continue;
    Target t{c.local.lock(), nullptr, hit, is_sender};
    if (!t.local) t.relay = c.relay.lock();
    if (t.local || t.relay) targets.push_back(std::move(t));
  }
  for (const auto& t : targets) {
    if (!t.hit) continue;
    if (t.local) {
      t.local->send_text(text, frames);
      if (t.local->ws_) fanout_.queued(gid, *t.local->ws_);
    } else {
      relay_deliver(*t.relay, text, frames);
      if (auto w = relay_socket(*t.relay)) fanout_.queued(gid, *w);
    }
    ++stats_.casts_delivered;
  }
  // Overload: while a receiver here is behind, the sender's sockets on this node stop being read.
  if (!fanout_.behind(gid)) return;
  for (const auto& t : targets) {
    if (!t.sender) continue;
    if (t.local) fanout_.published(gid, t.local->ws_);
    else fanout_.published(gid, relay_socket(*t.relay));
  }
}

// ---- client sockets and subscriptions ------------------------------------------------------

Task<void> Runtime::attach_client(Namespace& group_ns, std::string gid, std::string group_node, std::string rid,
                                  std::weak_ptr<Socket> local, std::weak_ptr<EntryRelay> relay, const void* key) {
  auto& g = clients_[gid];
  g.group_node = group_node;
  g.group_ns = &group_ns;
  if (auto [at, fresh] = g.at.try_emplace(key, g.clients.size()); fresh)
    g.clients.push_back({rid, std::move(local), std::move(relay), key});
  else
    g.clients[at->second] = {rid, std::move(local), std::move(relay), key};
  if (!cluster_ || group_node == self_ || group_node.empty()) {
    subscribe(gid, rid, self_, +1);
    co_return;
  }
  std::string gns = group_ns.name(), self = self_;
  auto p = cluster_->rpc().call(group_node, kFireDeadline, subscribe_call(gns, gid, rid, self, 1));
  try {
    co_await node::await_kj(loop_, std::move(p));
  } catch (const node::KjError& e) {
    // The Group's node is unreachable: node_gone() re-subscribes with its successor.
    ++stats_.remote_errors;
    ops::warn("subscribe_failed", "subscribe at " + group_node + " failed: " + e.what(), {{"node", group_node}});
  }
}

void Runtime::detach_client(const std::string& gid, const std::string& rid, const void* key) {
  auto it = clients_.find(gid);
  if (it == clients_.end()) return;
  auto& list = it->second.clients;
  auto& at = it->second.at;
  auto found = at.find(key);
  if (found == at.end()) return;
  size_t i = found->second;
  at.erase(found);
  if (i + 1 != list.size()) {
    list[i] = std::move(list.back());
    at[list[i].key] = i;
  }
  list.pop_back();
  std::string group_node = it->second.group_node;
  Namespace* gns = it->second.group_ns;
  if (list.empty()) clients_.erase(it);
  if (!cluster_ || group_node == self_ || group_node.empty()) {
    subscribe(gid, rid, self_, -1);
    return;
  }
  std::string gname = gns ? gns->name() : std::string(), self = self_;
  fire(group_node, subscribe_call(gname, gid, rid, self, -1));
}

void Runtime::subscribe(const std::string& gid, const std::string& rid, const std::string& node, int delta,
                        bool absolute) {
  GroupHost* host = find_group(gid);
  if (!host) {
    std::string to = moved_to(gid);
    Namespace* gns = nullptr;
    if (auto c = clients_.find(gid); c != clients_.end()) gns = c->second.group_ns;
    if (to.empty() || !gns) return;
    std::string gname = gns->name();
    fire(to, subscribe_call(gname, gid, rid, node, delta, absolute));
    return;
  }
  auto& rids = host->subscribers[node];
  int& n = rids[rid];
  n = absolute ? delta : n + delta;
  if (n <= 0) rids.erase(rid);
  if (rids.empty()) host->subscribers.erase(node);
}

}  // namespace dog
