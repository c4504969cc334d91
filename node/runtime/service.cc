// This node's wire::Node: what peers call (rpc/dog.capnp). Each method checks its input (a
// peer is authenticated but its bytes are still parsed with care: bad ids and unknown
// namespaces are refused with FAILED), then runs the runtime's coroutine and answers when it
// completes. A call cancelled by the peer stops touching the call's context.
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <kj/debug.h>

#include "node/runtime/relay.h"
#include "node/runtime/runtime.h"
#include "node/runtime/wire_util.h"

namespace dog {

namespace {

using rpc::wire::Node;

kj::Exception failed(const std::string& msg) {
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::heapString(msg.data(), msg.size()));
}

// Runs `task` on the loop; once it completes (and only if the call is still live) `done` fills
// the results. Exceptions become FAILED with their message.
template <typename T, typename Done>
kj::Promise<void> serve(Runtime& rt, Task<T> task, Done done) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  auto live = std::make_shared<bool>(true);
  auto ful = std::make_shared<kj::Own<kj::PromiseFulfiller<void>>>(kj::mv(paf.fulfiller));
  asio::co_spawn(rt.loop().io(), std::move(task),
                 [live, ful, done = std::move(done)](std::exception_ptr e, T value) mutable {
                   if (!*live) return;
                   try {
                     if (e) std::rethrow_exception(e);
                     done(std::move(value));
                     (*ful)->fulfill();
                   } catch (const std::exception& x) {
                     (*ful)->reject(failed(x.what()));
                   }
                 });
  return paf.promise.attach(kj::defer([live] { *live = false; }));
}

struct Target {
  Namespace* ns = nullptr;
  std::string hex;
};

Target target_of(Runtime& rt, rpc::wire::ObjectRef::Reader ref) {
  Target t;
  t.ns = rt.find_namespace(std::string_view(ref.getNs().begin(), ref.getNs().size()));
  if (!t.ns) throw failed("unknown namespace");
  t.hex = wire::hex_of(ref.getId());
  if (t.hex.empty() || !t.ns->parse_id(t.hex)) throw failed("bad object id for namespace " + t.ns->name());
  return t;
}

constexpr size_t kMaxStreamedBody = 64u << 20;

// A peer's request id is held by the same bound as a local identify's (runtime.cc).
constexpr size_t kMaxRequestId = 256;
constexpr size_t kMaxReportedRequestIds = 1 << 16;

std::string request_id_of(capnp::Text::Reader t) {
  if (t.size() > kMaxRequestId) throw failed("request id longer than 256 bytes");
  return std::string(t.begin(), t.size());
}

Task<Response> fetch_owned(Runtime& rt, Namespace* ns, std::string hex, http::Request req,
                           std::shared_ptr<Stub::Identity> route) {
  Response res = co_await rt.fetch_here(*ns, hex, req, route);
  if (res.stream) {
    // Bodies cross nodes whole (bounded); the entry node streams nothing the Replica streamed.
    auto source = std::move(res.stream);
    res.stream = nullptr;
    while (auto chunk = co_await source()) {
      if (res.body.size() + chunk->size() > kMaxStreamedBody) throw std::runtime_error("streamed body too large to relay");
      res.body += *chunk;
    }
  }
  co_return res;
}

struct IdentifyOutcome {
  Runtime::IdentifyAnswer answer;
  int status = 0;
  std::string message;
};

Task<IdentifyOutcome> identify_owned(Runtime& rt, Namespace* ns, std::string gid, std::string rid, std::string caller) {
  IdentifyOutcome o;
  try {
    o.answer = co_await rt.identify_here(*ns, gid, std::move(rid), caller);
  } catch (const HttpError& e) {
    o.status = e.status();
    o.message = e.what();
  }
  co_return o;
}

Task<std::string> gossip_owned(std::shared_ptr<Replica> rep, Json msg) {
  Json v = co_await rep->ongossip(msg);
  co_return v.dump();
}

class NodeService final : public Node::Server {
 public:
  explicit NodeService(Runtime& rt) : rt_(rt), alive_(rt.alive_flag()) {}

  kj::Promise<void> deliver(DeliverContext context) override {
    check();
    auto p = context.getParams();
    Target t = target_of(rt_, p.getTarget());
    std::shared_ptr<Stub::Identity> route;
    if (p.hasRoute()) {
      auto r = p.getRoute();
      route = std::make_shared<Stub::Identity>();
      route->rid = request_id_of(r.getRequestId());
      route->gid = wire::hex_of(r.getGroup());
      route->group_node = r.getGroupNode();
      route->group_ns = rt_.find_namespace(std::string_view(r.getGroupNs().begin(), r.getGroupNs().size()));
      route->claimed = true;
    }
    // Serve what lives here, a Replica its Group placed here, or an object whose id we own.
    bool here = rt_.locate(*t.ns, t.hex) == rt_.self_node() || (route && !rt_.is_group_ns(*t.ns));
    if (!here) {
      auto n = context.getResults().initResult().initNotOwner();
      n.setOwnerHint(rt_.locate(*t.ns, t.hex));
      return kj::READY_NOW;
    }
    auto to = std::make_shared<std::optional<rpc::wire::WsSink::Client>>();
    if (p.hasToClient()) *to = p.getToClient();
    auto req = wire::request_of(p.getHead(), p.getBody());
    req.relayed = p.hasToClient();
    return serve(rt_, fetch_owned(rt_, t.ns, t.hex, std::move(req), route),
                 [this, context, to](Response res) mutable {
                   auto out = context.getResults().initResult().initResponse();
                   auto head = out.initHead();
                   if (res.websocket) {
                     if (!*to) throw std::runtime_error("upgrade accepted without a client sink");
                     head.setStatus(101);
                     out.setSocket(open_replica_relay(rt_, res.websocket, kj::mv(**to)));
                     return;
                   }
                   head.setStatus(static_cast<uint16_t>(res.status));
                   auto hs = head.initHeaders(static_cast<unsigned>(res.headers.size()));
                   unsigned i = 0;
                   for (const auto& h : res.headers) {
                     hs[i].setName(h.name);
                     hs[i].setValue(h.value);
                     ++i;
                   }
                   out.setBody(wire::bytes_of(res.body));
                 });
  }

  kj::Promise<void> identifyGroup(IdentifyGroupContext context) override {
    check();
    auto p = context.getParams();
    Target t = target_of(rt_, p.getGroup());
    std::string rid = request_id_of(p.getRequestId());
    return serve(rt_, identify_owned(rt_, t.ns, t.hex, rid, p.getCaller()), [this, context](IdentifyOutcome o) mutable {
      auto res = context.getResults().initResult();
      res.setGroupNode(rt_.self_node());
      if (o.status) {
        auto e = res.initError();
        e.setStatus(static_cast<uint16_t>(o.status));
        e.setMessage(o.message);
      } else if (!o.answer.not_here.empty()) {
        res.initNotHere().setOwnerHint(o.answer.not_here);
      } else {
        auto r = res.initReplica();
        r.setId(wire::bytes_of_hex(o.answer.sid));
        r.setNode(o.answer.node);
      }
    });
  }

  kj::Promise<void> releaseSlot(ReleaseSlotContext context) override {
    check();
    auto p = context.getParams();
    Target t = target_of(rt_, p.getGroup());
    std::string sid = wire::hex_of(p.getReplica());
    if (sid.empty()) throw failed("bad replica id");
    rt_.release_slot(*t.ns, t.hex, rt_.self_node(), sid, request_id_of(p.getRequestId()), p.getEmpty());
    return kj::READY_NOW;
  }

  kj::Promise<void> groupCast(GroupCastContext context) override {
    check();
    auto c = context.getParams().getCast();
    Target t = target_of(rt_, c.getGroup());
    rt_.group_cast(t.hex, c);
    return kj::READY_NOW;
  }

  kj::Promise<void> deliverCast(DeliverCastContext context) override {
    check();
    auto c = context.getParams().getCast();
    target_of(rt_, c.getGroup());
    rt_.deliver_cast(c);
    return kj::READY_NOW;
  }

  kj::Promise<void> subscribe(SubscribeContext context) override {
    check();
    auto p = context.getParams();
    Target t = target_of(rt_, p.getGroup());
    int delta = p.getDelta();
    if (delta > 0 && !rt_.group_core(*t.ns, t.hex) && rt_.locate(*t.ns, t.hex) == rt_.self_node())
      rt_.group_rebuilt(*t.ns, t.hex);  // a Group re-created after a failover: its sockets come first
    constexpr int kMaxDelta = 1 << 20;  // a hand-over moves a whole count at once
    rt_.subscribe(t.hex, request_id_of(p.getRequestId()), p.getNode(), std::clamp(delta, -kMaxDelta, kMaxDelta), p.getAbsolute());
    return kj::READY_NOW;
  }

  kj::Promise<void> peers(PeersContext context) override {
    check();
    auto p = context.getParams();
    Target t = target_of(rt_, p.getGroup());
    auto list = rt_.group_peers(*t.ns, t.hex, wire::hex_of(p.getReplica()));
    auto out = context.getResults().initPeers(static_cast<unsigned>(list.size()));
    for (unsigned i = 0; i < list.size(); ++i) {
      out[i].setId(wire::bytes_of_hex(list[i].first));
      out[i].setNode(list[i].second);
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> registerActivation(RegisterActivationContext context) override {
    check();
    auto p = context.getParams();
    Target t = target_of(rt_, p.getTarget());
    if (p.hasGroup()) {
      Target g = target_of(rt_, p.getGroup());
      std::vector<std::string> rids;
      auto reported = p.getReport().getRequestIds();
      if (reported.size() > kMaxReportedRequestIds) throw failed("report lists too many request ids");
      for (auto r : reported) rids.push_back(request_id_of(r));
      rt_.adopt_replica(*g.ns, g.hex, t.ns->name(), t.hex, p.getHost(), p.getReport().getReplicaCount(), rids);
      context.getResults().initResult().setOk();
    } else if (rt_.register_host(t.hex, p.getHost())) {
      context.getResults().initResult().setOk();
    } else {
      context.getResults().initResult().setConflict(rt_.self_node());
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> lookup(LookupContext context) override {
    check();
    Target t = target_of(rt_, context.getParams().getTarget());
    context.getResults().setHost(rt_.known_host(t.hex));
    return kj::READY_NOW;
  }

  kj::Promise<void> gossip(GossipContext context) override {
    check();
    auto p = context.getParams();
    if (p.getTopic() != "dog.gossip") throw failed("unknown gossip topic");
    Target t = target_of(rt_, p.getGroup());
    auto rep = rt_.peer(*t.ns, t.hex);
    if (!rep) throw failed("no such replica here");
    auto d = p.getPayload();
    Json msg = Json::parse(std::string_view(reinterpret_cast<const char*>(d.begin()), d.size()), nullptr, false);
    if (msg.is_discarded()) throw failed("gossip payload is not JSON");
    return serve(rt_, gossip_owned(rep, std::move(msg)), [context](std::string reply) mutable {
      context.getResults().setReply(wire::bytes_of(reply));
    });
  }

 private:
  void check() const {
    // Before the cluster is attached (still joining) this node serves nothing to peers.
    if (*alive_ && !rt_.clustered())
      throw kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__, kj::heapString("node still joining"));
    if (!*alive_) throw kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__, kj::heapString("node shutting down"));
  }

  Runtime& rt_;
  std::shared_ptr<bool> alive_;
};
// (rt_.clustered() is read only while *alive_ holds.)

}  // namespace

rpc::wire::Node::Client Runtime::make_service() { return kj::heap<NodeService>(*this); }

}  // namespace dog
