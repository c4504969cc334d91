#include "node/runtime/runtime.h"

#include <algorithm>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>

#include "node/ops/log.h"
#include "routing/object_id.h"

namespace dog {
namespace {

constexpr size_t kMaxRequestId = 256;

const routing::IdNamespace& keys(const std::shared_ptr<const void>& p) {
  return *static_cast<const routing::IdNamespace*>(p.get());
}

}  // namespace

// ---- Namespace, Env ------------------------------------------------------------------------

Namespace::Namespace(Runtime& rt, std::string name)
    : runtime_(rt), name_(std::move(name)), keys_(std::make_shared<routing::IdNamespace>(name_)) {}

ObjectId Namespace::id_from_name(std::string_view name) const {
  return ObjectId(keys(keys_).from_name(name).to_string());
}

ObjectId Namespace::new_unique_id() const {
  if (runtime_.clustered()) return runtime_.place_new(*this);
  return ObjectId(keys(keys_).new_unique().to_string());
}

std::optional<ObjectId> Namespace::parse_id(std::string_view hex, std::string* error) const {
  auto r = keys(keys_).parse(hex);
  if (!r) {
    if (error) *error = r.message;
    return std::nullopt;
  }
  return ObjectId(r.id->to_string());
}

ObjectId Namespace::id_from_string(std::string_view hex) const {
  std::string error;
  auto id = parse_id(hex, &error);
  if (!id) throw BadId("invalid id for namespace " + name_ + ": " + error);
  return *id;
}

Stub Namespace::get(const ObjectId& id) {
  if (id.hex().empty()) throw BadId("empty id for namespace " + name_);
  Stub s;
  s.runtime_ = &runtime_;
  s.ns_ = this;
  s.id_ = id;
  return s;
}

Namespace& Env::operator[](std::string_view binding) const {
  Namespace* ns = runtime_.find_namespace(binding);
  if (!ns) throw std::out_of_range("no binding named " + std::string(binding));
  return *ns;
}

bool Env::has(std::string_view binding) const { return runtime_.find_namespace(binding) != nullptr; }

Task<Response> Stub::fetch(Request& req) {
  if (!runtime_) throw std::logic_error("fetch on an empty stub");
  co_return co_await runtime_->fetch(*this, req);
}

Task<Stub> identify(ObjectId group_id, std::string request_id, Family family) {
  co_return co_await family.parent.runtime_.identify(group_id, request_id, family);
}

// ---- Runtime: classes and instances --------------------------------------------------------

Runtime::Runtime(node::Loop& loop, RuntimeConfig config, ClusterPort* cluster)
    : loop_(loop), config_(config), cluster_(cluster), self_(cluster ? cluster->self() : std::string()),
      env_(*this) {}

void Runtime::set_cluster(ClusterPort* cluster) {
  cluster_ = cluster;
  self_ = cluster ? cluster->self() : std::string();
}

Runtime::~Runtime() {
  *alive_ = false;
  // Sockets and timers reference hosts; drop them in a defined order.
  for (auto& [name, cls] : classes_) {
    for (auto& [hex, rep] : cls.replicas) {
      if (rep->state_->idle_timer) rep->state_->idle_timer->cancel();
      for (auto& e : rep->state_->pool)
        for (auto& s : e.sockets) s->replica_ = nullptr;
    }
  }
}

Namespace& Runtime::add_group(std::string binding, std::function<std::shared_ptr<Group>()> make) {
  if (classes_.count(binding)) throw std::invalid_argument("binding registered twice: " + binding);
  Class c;
  c.ns.reset(new Namespace(*this, binding));
  c.is_group = true;
  c.make_group = std::move(make);
  return *classes_.emplace(binding, std::move(c)).first->second.ns;
}

Namespace& Runtime::add_replica(std::string binding, std::function<std::shared_ptr<Replica>()> make) {
  if (classes_.count(binding)) throw std::invalid_argument("binding registered twice: " + binding);
  Class c;
  c.ns.reset(new Namespace(*this, binding));
  c.make_replica = std::move(make);
  return *classes_.emplace(binding, std::move(c)).first->second.ns;
}

Namespace* Runtime::find_namespace(std::string_view binding) {
  auto it = classes_.find(binding);
  return it == classes_.end() ? nullptr : it->second.ns.get();
}

Runtime::Class& Runtime::class_of(const Namespace& ns) { return classes_.find(ns.name())->second; }
const Runtime::Class& Runtime::class_of(const Namespace& ns) const { return classes_.find(ns.name())->second; }

Runtime::GroupHost& Runtime::group_host(Namespace& ns, const std::string& hex) {
  Class& c = class_of(ns);
  if (!c.is_group) throw std::logic_error(ns.name() + " is not a Group namespace");
  if (!c.groups.count(hex)) refuse_over_cap(ns, c.groups.size());
  auto& slot = c.groups[hex];
  if (!slot) {
    auto host = std::make_shared<GroupHost>();
    host->obj = c.make_group();
    host->obj->uid_ = hex;
    slot = host;
    ++stats_.activated[ns.name()];
    host->child = &host->obj->link(env_);  // two-phase init: link after construction
  }
  return *slot;
}

void Runtime::refuse_over_cap(const Namespace& ns, size_t live) {
  if (live < config_.max_live_objects) return;
  ++stats_.objects_refused;
  throw HttpError(503, "too many live objects in namespace " + ns.name() + " on this node");
}

std::shared_ptr<Group> Runtime::group(Namespace& ns, const std::string& hex) { return group_host(ns, hex).obj; }

std::shared_ptr<Replica> Runtime::replica(Namespace& ns, const std::string& hex) {
  Class& c = class_of(ns);
  if (c.is_group) throw std::logic_error(ns.name() + " is not a Replica namespace");
  if (!c.replicas.count(hex)) refuse_over_cap(ns, c.replicas.size());
  auto& slot = c.replicas[hex];
  if (!slot) {
    auto rep = c.make_replica();
    rep->uid_ = hex;
    rep->state_ = std::make_shared<Replica::State>();
    rep->state_->rt = this;
    rep->state_->rt_alive = alive_;
    rep->state_->self = rep.get();
    rep->state_->self_ns = &ns;
    rep->state_->group_node = self_;
    slot = rep;
    ++stats_.activated[ns.name()];
    rep->state_->parent_ns = &rep->link(env_);
    if (cluster_) cluster_->publish_load(static_cast<uint32_t>(c.replicas.size()));
  }
  return slot;
}

std::shared_ptr<Replica> Runtime::peer(Namespace& ns, const std::string& hex) {
  Class& c = class_of(ns);
  auto it = c.replicas.find(hex);
  return it == c.replicas.end() ? nullptr : it->second;
}

runtime::GroupCore* Runtime::group_core(Namespace& ns, const std::string& hex) {
  Class& c = class_of(ns);
  auto it = c.groups.find(hex);
  return it == c.groups.end() ? nullptr : &it->second->core;
}

size_t Runtime::replica_count(const Namespace& ns) const { return class_of(ns).replicas.size(); }
std::vector<std::string> Runtime::replica_ids(const Namespace& ns) const {
  std::vector<std::string> out;
  for (const auto& [hex, rep] : class_of(ns).replicas) out.push_back(hex);
  return out;
}
size_t Runtime::group_count(const Namespace& ns) const { return class_of(ns).groups.size(); }

std::vector<std::string> Runtime::namespace_names() const {
  std::vector<std::string> out;
  for (const auto& [name, cls] : classes_) out.push_back(name);
  return out;
}

std::vector<Runtime::LiveObject> Runtime::live_objects(const Namespace& ns) const {
  std::vector<LiveObject> out;
  const Class& c = class_of(ns);
  for (const auto& [hex, host] : c.groups) {
    LiveObject o{hex, "", self_, 0, host->core.size()};
    for (const auto& [node, rids] : host->subscribers)
      for (const auto& [rid, n] : rids) o.sockets += static_cast<size_t>(std::max(n, 0));
    out.push_back(std::move(o));
  }
  for (const auto& [hex, rep] : c.replicas) {
    const auto& st = *rep->state_;
    LiveObject o{hex, st.gid, st.group_node, 0, 0};
    for (const auto& e : st.pool) o.sockets += e.sockets.size();
    out.push_back(std::move(o));
  }
  return out;
}

void Runtime::maybe_evict_group(Namespace& group_ns, const std::string& gid) {
  Class& gc = class_of(group_ns);
  auto it = gc.groups.find(gid);
  if (it == gc.groups.end()) return;
  const GroupHost& h = *it->second;
  if (h.identifying || !h.waiters.empty() || h.inflight > 0 || h.core.size() != 0) return;
  gc.groups.erase(it);
  ++stats_.evicted[group_ns.name()];
  if (cluster_) unregister(group_ns, gid);
}

std::vector<std::string> Runtime::neighbors(Namespace& ns, const std::string& hex) {
  auto p = peer(ns, hex);
  if (!p || !p->state_->parent_ns || p->state_->gid.empty()) return {};
  std::vector<std::string> out;
  for (auto& [sid, node] : group_peers(*p->state_->parent_ns, p->state_->gid, hex)) out.push_back(sid);
  return out;
}

std::string Runtime::group_of(Namespace& ns, const std::string& hex) {
  auto p = peer(ns, hex);
  return p ? p->state_->gid : std::string();
}

std::string Runtime::serialize(const Json& msg) { return msg.is_string() ? msg.get<std::string>() : msg.dump(); }

// ---- identify ------------------------------------------------------------------------------

Task<void> Runtime::lock_identify(GroupHost& host) {
  while (host.identifying) {
    auto waiter = std::make_shared<asio::steady_timer>(loop_.io(), asio::steady_timer::time_point::max());
    host.waiters.push_back(waiter);
    std::error_code ec;
    co_await waiter->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  host.identifying = true;
}

void Runtime::unlock_identify(GroupHost& host) {
  host.identifying = false;
  if (!host.waiters.empty()) {
    host.waiters.front()->cancel();
    host.waiters.pop_front();
  }
}

Task<Stub> Runtime::identify(const ObjectId& gid, std::string_view rid_in, const Family& family) {
  if (rid_in.empty()) throw HttpError(400, "Missing: Request ID");
  if (rid_in.size() > kMaxRequestId)
    throw HttpError(400, "request id longer than " + std::to_string(kMaxRequestId) + " bytes");
  std::string rid(rid_in);
  std::string node = locate(family.parent, gid.hex());
  IdentifyAnswer ans;
  // A stale route gets "not here, try X": follow it once, never ping-pong.
  for (int attempt = 0;; ++attempt) {
    if (node == self_) ans = co_await identify_here(family.parent, gid.hex(), rid, self_);
    else ans = co_await identify_remote(node, family, gid.hex(), rid);
    if (ans.not_here.empty()) break;
    if (attempt == 1 || ans.not_here == node) throw HttpError(503, "group unavailable: routing has not converged");
    ++stats_.reroutes;
    node = ans.not_here;
  }
  if (node != self_) remember_route(gid.hex(), node);
  Namespace& child = family.child;
  Stub stub = child.get(child.id_from_string(ans.sid));
  stub.node_ = ans.node;
  stub.identity_ = std::make_shared<Stub::Identity>();
  stub.identity_->rid = rid;
  stub.identity_->gid = gid.hex();
  stub.identity_->group_node = node;
  stub.identity_->group_ns = &family.parent;
  arm_claim_timeout(stub.identity_, child, ans.sid);
  co_return stub;
}

Task<Runtime::IdentifyAnswer> Runtime::identify_here(Namespace& group_ns, const std::string& gid, std::string rid,
                                                     const std::string& caller) {
  Class& gc = class_of(group_ns);
  if (!gc.is_group) throw HttpError(400, group_ns.name() + " is not a Group namespace");
  if (!gc.groups.count(gid) && cluster_) {
    // Not live here: another node holds it (directory), or owns its id.
    if (auto it = directory_.find(gid); it != directory_.end() && it->second != self_ && cluster_->is_member(it->second))
      co_return IdentifyAnswer{{}, {}, it->second};
    std::string owner = locate(group_ns, gid);
    if (owner != self_) co_return IdentifyAnswer{{}, {}, owner};
    // Ours, but unknown here: the node that owned it before may still host it (a join never
    // moves a live object). Ask it before making a second copy.
    std::string prev = co_await ask_previous_owner(group_ns, gid);
    if (!prev.empty() && prev != self_ && !gc.groups.count(gid)) {
      directory_[gid] = prev;
      co_return IdentifyAnswer{{}, {}, prev};
    }
  }
  GroupHost& host = group_host(group_ns, gid);
  auto keep = gc.groups[gid];  // the host outlives the awaits below
  Namespace& child = *host.child;

  co_await lock_identify(host);
  IdentifyAnswer out;
  try {
    int limit = host.obj->limit;
    if (auto placed = host.core.place(rid, limit)) {
      out.sid = *placed;
    } else {
      Request ireq;
      ireq.method = "GET";
      ireq.target = "/~$~/identify";
      ireq.headers.set("x-dog-group-identifier", gid);
      ireq.headers.set("x-dog-client-identifier", rid);
      ireq.headers.set("x-dog-replica-identifier", "");
      ObjectId nid = co_await host.obj->clusterize(ireq, child);
      std::string err;
      if (!child.parse_id(nid.hex(), &err)) throw std::runtime_error("clusterize returned a bad id: " + err);
      out.sid = nid.hex();
      // A new Replica lives where its id hashes now (place_new chose an id on a light node). It
      // is created before the Group counts it: a refusal (the live-object cap) leaves no slot.
      std::string where = cluster_ ? locate(child, out.sid) : self_;
      if (where == self_) {
        auto fresh = replica(child, out.sid);
        fresh->state_->gid = gid;
        fresh->state_->group_node = self_;
      }
      host.core.add_new(rid, out.sid, limit);
      host.replica_node[out.sid] = where;
      if (ops::enabled(ops::Level::kDebug))
        ops::debug("replica_placed", "replica " + out.sid.substr(0, 12) + " of group " + gid.substr(0, 12) + " placed on " + where,
                   {{"group", gid}, {"replica", out.sid}, {"node", where}});
    }
  } catch (...) {
    unlock_identify(host);
    maybe_evict_group(group_ns, gid);  // e.g. a clusterize that threw
    throw;
  }
  unlock_identify(host);
  auto it = host.replica_node.find(out.sid);
  out.node = it != host.replica_node.end() ? it->second : self_;
  (void)caller;
  co_return out;
}

// An identify slot whose stub is never fetched is released after the claim timeout (DOG leaks
// it forever).
void Runtime::arm_claim_timeout(const std::shared_ptr<Stub::Identity>& id, Namespace& child, const std::string& sid) {
  // The timer and its handler hold what the release needs, not the stub: dropping the stub
  // without a fetch must not cancel the release (the slot would leak forever, as in DOG).
  auto done = std::make_shared<bool>(false);
  auto timer = std::make_shared<asio::steady_timer>(loop_.io(), config_.identify_claim_timeout);
  id->claim_done = done;
  id->claim_timer = timer;
  auto alive = alive_;
  timer->async_wait([this, alive, done, timer, child = &child, sid, rid = id->rid, gid = id->gid,
                     group_node = id->group_node, group_ns = id->group_ns](std::error_code ec) {
    if (ec || !*alive || *done) return;
    *done = true;  // the slot is gone; a late fetch takes a fresh one
    auto rep = peer(*child, sid);
    bool empty = !rep || !rep->state_->entry(rid);
    release_slot(*group_ns, gid, group_node, sid, rid, empty);
  });
}

runtime::GroupCore::CloseResult Runtime::group_close(Namespace& group_ns, const std::string& gid,
                                                     const std::string& sid, const std::string& rid, bool empty) {
  Class& c = class_of(group_ns);
  auto it = c.groups.find(gid);
  if (it == c.groups.end()) return runtime::GroupCore::CloseResult::kUnknownReplica;
  return it->second->core.close(sid, rid, empty, it->second->obj->limit);
}

// ---- fetch ---------------------------------------------------------------------------------

namespace {
Response error_response(int status, const std::string& message) {
  auto r = Response::text(status, message);
  r.headers.set("Connection", "close");
  return r;
}
}  // namespace

Task<Response> Runtime::fetch(Stub& stub, Request& req) {
  Namespace& ns = *stub.ns_;
  const std::string hex = stub.id_.hex();
  if (auto ident = stub.identity_) {
    if (!ident->claimed && !(ident->claim_done && *ident->claim_done)) {
      ident->claimed = true;
      if (ident->claim_done) *ident->claim_done = true;
      if (ident->claim_timer) ident->claim_timer->cancel();
      // The cancelled handler holds its own references; the Identity lives as long as the
      // connection (one per WebSocket), so it keeps neither (~180 bytes per idle socket).
      ident->claim_timer.reset();
      ident->claim_done.reset();
    } else if (ident->group_node == self_) {
      if (auto* core = group_core(*ident->group_ns, ident->gid))
        core->acquire(hex);  // each fetch holds one slot for its duration
    }
  }
  std::string node = !stub.node_.empty() ? stub.node_ : locate(ns, hex);
  for (int attempt = 0;; ++attempt) {
    if (node == self_) co_return co_await fetch_here(ns, hex, req, stub.identity_);
    auto out = co_await fetch_remote(node, ns, hex, req, stub.identity_);
    if (out.not_here.empty()) co_return std::move(out.response);
    if (attempt == 1 || out.not_here == node) co_return error_response(503, "object unavailable: routing has not converged");
    ++stats_.reroutes;
    node = out.not_here;
    remember_route(hex, node);
  }
}

Task<Response> Runtime::fetch_here(Namespace& ns, const std::string& hex, Request& req,
                                   std::shared_ptr<Stub::Identity> route) {
  if (class_of(ns).is_group) {
    const std::string gid = hex;
    GroupHost& host = group_host(ns, gid);
    auto keep = class_of(ns).groups[gid];
    Response res;
    host.inflight++;
    try {
      res = co_await host.obj->receive(req);
    } catch (const HttpError& e) {
      res = error_response(e.status(), e.what());
    } catch (const std::exception& e) {
      ops::error("hook_threw", "Group " + gid + " receive threw: " + e.what(), {{"hook", "receive"}, {"object", gid}});
      res = error_response(500, "Internal Server Error");
    }
    host.inflight--;
    maybe_evict_group(ns, gid);
    co_return res;
  }
  if (route) {
    req.headers.set("x-dog-client-identifier", route->rid);
    req.headers.set("x-dog-replica-identifier", hex);
    req.headers.set("x-dog-group-identifier", route->gid);
  }
  // validate(req, uid): the checks and messages of dog-semantics §3.2, before anything is
  // created (a refused request leaves no Replica behind).
  auto oid = req.headers.get("x-dog-replica-identifier");
  if (!oid) co_return error_response(400, "Missing: Replica ID");
  if (*oid != hex) co_return error_response(400, "Mismatch: Replica ID");
  auto gid = req.headers.get("x-dog-group-identifier");
  if (!gid) co_return error_response(400, "Missing: Group ID");
  auto rid_h = req.headers.get("x-dog-client-identifier");
  if (!rid_h || rid_h->empty()) co_return error_response(400, "Missing: Request ID");
  std::string rid(*rid_h);
  auto rep = replica(ns, hex);
  auto state = rep->state_;
  if (route && (!route->group_node.empty() || !clustered())) state->group_node = route->group_node;
  if (state->gid.empty()) state->gid = std::string(*gid);

  state->inflight++;
  if (state->idle_timer) state->idle_timer->cancel();
  Response res;
  try {
    res = co_await rep->receive(req);
  } catch (const HttpError& e) {
    res = error_response(e.status(), e.what());
  } catch (const std::exception& e) {
    ops::error("hook_threw", "Replica " + rep->uid() + " receive threw: " + e.what(),
               {{"hook", "receive"}, {"object", rep->uid()}});
    res = error_response(500, "Internal Server Error");
  }
  state->inflight--;
  // A plain response (anything but an accepted upgrade) gives its slot back before the caller
  // sees it; a WebSocket keeps it until the socket closes.
  if (!res.websocket) state->release(rid, /*empty=*/true);
  state->touch();
  co_return res;
}

// ---- eviction ------------------------------------------------------------------------------

bool Runtime::evict_if_idle(Namespace& ns, const std::string& hex) {
  auto rep = peer(ns, hex);
  if (!rep) return false;
  auto& st = *rep->state_;
  if (st.inflight > 0 || !st.pool.empty()) return false;
  if (st.idle_timer) st.idle_timer->cancel();
  // Leave the Group's bookkeeping (DOG keeps departed Replicas forever).
  if (st.parent_ns && !st.gid.empty()) release_slot(*st.parent_ns, st.gid, st.group_node, hex, "", true);
  class_of(ns).replicas.erase(hex);
  ++stats_.evicted[ns.name()];
  if (cluster_) {
    cluster_->publish_load(static_cast<uint32_t>(class_of(ns).replicas.size()));
    unregister(ns, hex);
  }
  return true;
}

size_t Runtime::evict_all_idle() {
  size_t n = 0;
  for (auto& [name, cls] : classes_) {
    if (cls.is_group) continue;
    std::vector<std::string> ids;
    for (auto& [hex, rep] : cls.replicas) ids.push_back(hex);
    for (auto& hex : ids) n += evict_if_idle(*cls.ns, hex) ? 1 : 0;
  }
  return n;
}

}  // namespace dog
