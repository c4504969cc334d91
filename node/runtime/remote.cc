// The runtime's calls to other nodes: identify and fetch routed to where objects live, casts
// (broadcast, whisper) through the Group's node, socket subscriptions, slot releases, and what a
// node does when another one is gone. The serving side is service.cc; relays are relay.cc.
#include <algorithm>
#include <asio/steady_timer.hpp>
#include <capnp/message.h>
#include <cstdio>
#include <sodium.h>

#include "node/kj_await.h"
#include "node/runtime/relay.h"
#include "node/runtime/runtime.h"
#include "node/runtime/wire_util.h"
#include "routing/placement.h"

namespace dog {

using rpc::wire::Node;

namespace {
constexpr auto kCallDeadline = 30 * kj::SECONDS;  // a Group's receive or a Replica's may await
constexpr auto kFireDeadline = 10 * kj::SECONDS;

const routing::IdNamespace& keys_of(const std::shared_ptr<const void>& p) {
  return *static_cast<const routing::IdNamespace*>(p.get());
}

// The calls several paths make, one builder each (what ConnectionManager::call runs).
auto subscribe_call(std::string gns, std::string gid, std::string rid, std::string node, int delta,
                    bool absolute = false) {
  return [=](Node::Client client) {
    auto req = client.subscribeRequest();
    wire::set_ref(req.initGroup(), gns, gid);
    req.setRequestId(rid);
    req.setNode(node);
    req.setDelta(delta);
    req.setAbsolute(absolute);
    return req.send().ignoreResult();
  };
}

// "`host` holds Replica `sid` of Group `gid` with `count` slots and these request ids".
auto report_call(std::string gns, std::string cns, std::string gid, std::string sid, std::string host, int count,
                 std::vector<std::string> rids) {
  return [=](Node::Client client) {
    auto req = client.registerActivationRequest();
    wire::set_ref(req.initTarget(), cns, sid);
    req.setHost(host);
    wire::set_ref(req.initGroup(), gns, gid);
    auto rep = req.initReport();
    rep.setReplicaCount(count);
    auto l = rep.initRequestIds(static_cast<unsigned>(rids.size()));
    for (size_t i = 0; i < rids.size(); ++i) l.set(static_cast<unsigned>(i), rids[i]);
    return req.send().ignoreResult();
  };
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

template <typename Fn>
void Runtime::fire(const std::string& node, Fn&& fn) {
  auto alive = alive_;
  cluster_->rpc()
      .call(node, kFireDeadline, kj::fwd<Fn>(fn))
      .then([]() {},
            [this, alive, node](kj::Exception&& e) {
              if (!*alive) return;
              ++stats_.remote_errors;
              std::fprintf(stderr, "dog: call to %s failed: %s\n", node.c_str(), e.getDescription().cStr());
            })
      .detach([](kj::Exception&&) {});
}

// A fire() whose loss would leave state wrong (failover reports, re-assertions): retried a few
// times while the runtime lives, 50 ms after the first failure and doubling (a peer that has
// just taken us back may still refuse us for a moment). The receiving side is idempotent.
namespace {
std::chrono::milliseconds retry_delay(int attempts_left) {
  return std::chrono::milliseconds(50 << std::clamp(6 - attempts_left, 0, 5));
}
}  // namespace
template <typename Fn>
void Runtime::fire_retry(const std::string& node, Fn fn, int attempts) {
  auto alive = alive_;
  cluster_->rpc()
      .call(node, kFireDeadline, Fn(fn))
      .then([]() {},
            [this, alive, node, fn, attempts](kj::Exception&& e) mutable {
              if (!*alive) return;
              ++stats_.remote_errors;
              if (attempts <= 1 || !cluster_->is_member(node)) {
                std::fprintf(stderr, "dog: call to %s failed for good: %s\n", node.c_str(), e.getDescription().cStr());
                return;
              }
              auto t = std::make_shared<asio::steady_timer>(loop_.io(), retry_delay(attempts));
              t->async_wait([this, alive, node, fn, attempts, t](std::error_code ec) mutable {
                if (!ec && *alive) fire_retry(node, std::move(fn), attempts - 1);
              });
            })
      .detach([](kj::Exception&&) {});
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
      o.fo.response.status = r2.getHead().getStatus();
      for (auto h : r2.getHead().getHeaders()) o.fo.response.headers.add(h.getName(), h.getValue());
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
    std::fprintf(stderr, "dog: fetch on %s failed: %s\n", node.c_str(), e.what());
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
  if (!host) {
    // Handed over: forward to where it went (once; the new node hosts it). Else it is gone and
    // nobody holds its sockets.
    std::string to = moved_to(gid);
    if (to.empty()) return;
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
  const bool whisper = cast.getKind() == rpc::wire::CastKind::WHISPER;
  std::string target = cast.getTarget();
  std::vector<std::string> nodes;
  for (const auto& [node, rids] : host->subscribers)
    if (!whisper || rids.count(target)) nodes.push_back(node);
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
  auto clients = it->second.clients;  // snapshot: a send may close a socket, which edits the list
  // Encoded once for every recipient on this node: each socket's queue takes a reference.
  const http::SharedFrames frames = http::make_frames(text, true);
  for (const auto& c : clients) {
    bool hit = kind == rpc::wire::CastKind::WHISPER ? c.rid == target : (self_too || c.rid != sender);
    if (!hit) continue;
    if (auto s = c.local.lock()) {
      s->send_text(text, frames);
      ++stats_.casts_delivered;
    } else if (auto r = c.relay.lock()) {
      relay_deliver(*r, text, frames);
      ++stats_.casts_delivered;
    }
  }
}

// ---- client sockets and subscriptions ------------------------------------------------------

Task<void> Runtime::attach_client(Namespace& group_ns, std::string gid, std::string group_node, std::string rid,
                                  std::weak_ptr<Socket> local, std::weak_ptr<EntryRelay> relay, const void* key) {
  auto& g = clients_[gid];
  g.group_node = group_node;
  g.group_ns = &group_ns;
  g.clients.push_back({rid, std::move(local), std::move(relay), key});
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
    std::fprintf(stderr, "dog: subscribe at %s failed: %s\n", group_node.c_str(), e.what());
  }
}

void Runtime::detach_client(const std::string& gid, const std::string& rid, const void* key) {
  auto it = clients_.find(gid);
  if (it == clients_.end()) return;
  auto& list = it->second.clients;
  auto before = list.size();
  std::erase_if(list, [&](const Client& c) { return c.key == key; });
  if (list.size() == before) return;
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
  if (find_group(hex)) return false;  // two activations: ours (the owner's) is kept
  directory_[hex] = host;
  return true;
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
  for (const auto& sid : h.core.replicas()) {
    auto n = h.replica_node.find(sid);
    std::string host = n == h.replica_node.end() ? self_ : n->second;
    int count = h.core.count(sid).value_or(0);
    auto rids = h.core.rids_of(sid);
    fire(to, report_call(gns, cns, gid, sid, host, count, rids));
  }
  for (const auto& [node, rids] : h.subscribers)
    for (const auto& [rid, n] : rids) {
      std::string nd = node, r = rid;
      int delta = n;
      fire(to, subscribe_call(gns, gid, r, nd, delta, /*absolute=*/true));  // the receiver may have counted them
    }
  gc.groups.erase(it);
  directory_[gid] = to;
  for (auto& [name, cls] : classes_)
    if (!cls.is_group)
      for (auto& [sid, rep] : cls.replicas)
        if (rep->state_->gid == gid) rep->state_->group_node = to;
  if (auto c = clients_.find(gid); c != clients_.end()) c->second.group_node = to;
  std::fprintf(stderr, "dog: group %s handed over to %s\n", gid.substr(0, 12).c_str(), to.c_str());
}

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
            // copy is kept and ours joins it.
            if (*alive && conflict && is_group) hand_over_group(*nsp, hex, owner);
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
        group_host(*g.group_ns, gid);
        subscribe(gid, c.rid, self_, +1);
        continue;
      }
      std::string gns = g.group_ns->name(), rid = c.rid, self = self_, gidc = gid;
      fire_retry(g.group_node, subscribe_call(gns, gidc, rid, self, 1));
    }
  }
}

}  // namespace dog
