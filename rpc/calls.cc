#include "rpc/calls.h"

#include <kj/debug.h>

namespace dog::rpc {
namespace {

kj::ArrayPtr<const kj::byte> bytes(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string to_string(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

void read_response(DeliverOutcome& o, wire::Response::Reader r) {
  o.status = r.getHead().getStatus();
  o.body = to_string(r.getBody());
}

void read_refusal(DeliverOutcome& o, wire::NotOwner::Reader n) {
  o.not_owner = true;
  o.refused_epoch = n.getEpoch();
  o.owner_hint = n.getOwnerHint();
}

kj::Promise<DeliverOutcome> attempt(ConnectionManager& m, const Target& t, const Request& r,
                                    Routed route, kj::Duration deadline) {
  std::string node = route.node;
  return m
      .call(node, deadline,
            [t, r, epoch = route.epoch](wire::Node::Client client) mutable {
              auto req = client.deliverRequest();
              set_target(req.initTarget(), t);
              req.setEpoch(epoch);
              set_head(req.initHead(), r);
              req.setBody(bytes(r.body));
              return req.send().then([](capnp::Response<wire::Node::DeliverResults> resp) {
                DeliverOutcome o;
                auto res = resp.getResult();
                if (res.isNotOwner()) read_refusal(o, res.getNotOwner());
                else read_response(o, res.getResponse());
                return o;
              });
            })
      .then([node](DeliverOutcome o) {
        o.node = node;
        return o;
      });
}

}  // namespace

void set_target(wire::ObjectRef::Builder b, const Target& t) {
  b.setNs(t.ns);
  b.setId(kj::arrayPtr(t.id.data(), t.id.size()));
}

void set_head(wire::RequestHead::Builder b, const Request& r) {
  b.setMethod(r.method);
  b.setPath(r.path);
  auto hs = b.initHeaders(r.headers.size());
  for (size_t i = 0; i < r.headers.size(); ++i) {
    hs[i].setName(r.headers[i].first);
    hs[i].setValue(r.headers[i].second);
  }
}

kj::Promise<DeliverOutcome> deliver(ConnectionManager& manager, Target target, Request request,
                                    Resolver resolve, kj::Duration deadline) {
  Routed first = resolve(0);
  auto p = attempt(manager, target, request, first, deadline);
  return p.then([&manager, target = kj::mv(target), request = kj::mv(request),
                 resolve = kj::mv(resolve), deadline](DeliverOutcome o) mutable
                -> kj::Promise<DeliverOutcome> {
    o.attempts = 1;
    if (!o.not_owner) return o;
    // Re-route exactly once, with a view at least as new as the refusing node's.
    Routed second = resolve(o.refused_epoch);
    return attempt(manager, target, request, second, deadline).then([](DeliverOutcome o2) {
      o2.attempts = 2;
      return o2;
    });
  });
}

kj::Promise<DeliverOutcome> deliver_streamed(ConnectionManager& manager, std::string node,
                                             uint64_t epoch, Target target, Request request,
                                             kj::AsyncInputStream& body, size_t chunk,
                                             kj::Duration deadline) {
  return manager
      .call(node, deadline,
            [target = kj::mv(target), request = kj::mv(request), epoch, &body,
             chunk](wire::Node::Client client) mutable {
              auto req = client.openRequest();
              set_target(req.initTarget(), target);
              req.setEpoch(epoch);
              set_head(req.initHead(), request);
              return req.send().then([&body, chunk](capnp::Response<wire::Node::OpenResults> resp)
                                         -> kj::Promise<DeliverOutcome> {
                auto res = resp.getResult();
                if (res.isNotOwner()) {
                  DeliverOutcome o;
                  read_refusal(o, res.getNotOwner());
                  return o;
                }
                auto call = kj::heap<wire::RequestCall::Client>(res.getCall());
                auto& c = *call;
                return pump(body, c, chunk)
                    .then([&c](uint64_t) { return c.finishRequest().send(); })
                    .then([](capnp::Response<wire::RequestCall::FinishResults> fin) {
                      DeliverOutcome o;
                      read_response(o, fin.getResponse());
                      return o;
                    })
                    .attach(kj::mv(call));
              });
            })
      .then([node](DeliverOutcome o) {
        o.node = node;
        o.attempts = 1;
        return o;
      });
}

kj::Promise<std::vector<GossipResult>> gossip(ConnectionManager& manager,
                                              const std::vector<std::string>& peers,
                                              Target group, std::string topic,
                                              std::string payload, kj::Duration deadline) {
  kj::Vector<kj::Promise<GossipResult>> asks;
  for (const auto& peer : peers) {
    asks.add(manager
                 .call(peer, deadline,
                       [group, topic, payload](wire::Node::Client client) mutable {
                         auto req = client.gossipRequest();
                         set_target(req.initGroup(), group);
                         req.setTopic(topic);
                         req.setPayload(bytes(payload));
                         return kj::Promise<capnp::Response<wire::Node::GossipResults>>(req.send());
                       })
                 .then(
                     [peer](capnp::Response<wire::Node::GossipResults> resp) {
                       GossipResult r;
                       r.peer = peer;
                       r.ok = true;
                       r.reply = to_string(resp.getReply());
                       return r;
                     },
                     [peer](kj::Exception&& e) {
                       GossipResult r;
                       r.peer = peer;
                       r.error = classify(e);
                       r.message = e.getDescription().cStr();
                       return r;
                     }));
  }
  return kj::joinPromises(asks.releaseAsArray()).then([](kj::Array<GossipResult> rs) {
    std::vector<GossipResult> out;
    for (auto& r : rs) out.push_back(kj::mv(r));
    return out;
  });
}

}  // namespace dog::rpc
