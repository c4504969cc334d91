// Internal to node/runtime/: the calls the runtime makes to other nodes, and how it sends them
// (fire: no answer awaited, failures counted; fire_retry: for calls whose loss would leave state
// wrong, retried while the peer takes us back). Included by remote.cc and failover.cc only.
#pragma once

#include <algorithm>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "node/ops/log.h"
#include "node/runtime/runtime.h"
#include "node/runtime/wire_util.h"

namespace dog::peer {

using rpc::wire::Node;

constexpr auto kCallDeadline = 30 * kj::SECONDS;  // a Group's receive or a Replica's may await
constexpr auto kFireDeadline = 10 * kj::SECONDS;
// How long a rebuilt Group casts to every member: longer than a report's retries (fire_retry,
// 50 ms doubling, six attempts, ~3.2 s), so every survivor's subscriptions have landed.
constexpr auto kRebuildCastWindow = std::chrono::seconds(5);

// The calls several paths make, one builder each (what ConnectionManager::call runs).
inline auto subscribe_call(std::string gns, std::string gid, std::string rid, std::string node, int delta,
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
inline auto report_call(std::string gns, std::string cns, std::string gid, std::string sid, std::string host, int count,
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

// A fire() whose loss would leave state wrong (failover reports, re-assertions): retried a few
// times while the runtime lives, 50 ms after the first failure and doubling (a peer that has
// just taken us back may still refuse us for a moment). The receiving side is idempotent.
inline std::chrono::milliseconds retry_delay(int attempts_left) {
  return std::chrono::milliseconds(50 << std::clamp(6 - attempts_left, 0, 5));
}

}  // namespace dog::peer

namespace dog {

template <typename Fn>
void Runtime::fire(const std::string& node, Fn&& fn) {
  auto alive = alive_;
  cluster_->rpc()
      .call(node, peer::kFireDeadline, kj::fwd<Fn>(fn))
      .then([]() {},
            [this, alive, node](kj::Exception&& e) {
              if (!*alive) return;
              ++stats_.remote_errors;
              ops::warn("call_failed", "call to " + node + " failed: " + e.getDescription().cStr(), {{"node", node}});
            })
      .detach([](kj::Exception&&) {});
}

template <typename Fn>
void Runtime::fire_retry(const std::string& node, Fn fn, int attempts) {
  auto alive = alive_;
  cluster_->rpc()
      .call(node, peer::kFireDeadline, Fn(fn))
      .then([]() {},
            [this, alive, node, fn, attempts](kj::Exception&& e) mutable {
              if (!*alive) return;
              ++stats_.remote_errors;
              if (attempts <= 1 || !cluster_->is_member(node)) {
                ops::warn("call_failed", "call to " + node + " failed for good: " + e.getDescription().cStr(),
                          {{"node", node}, {"final", true}});
                return;
              }
              auto t = std::make_shared<asio::steady_timer>(loop_.io(), peer::retry_delay(attempts));
              t->async_wait([this, alive, node, fn, attempts, t](std::error_code ec) mutable {
                if (!ec && *alive) fire_retry(node, std::move(fn), attempts - 1);
              });
            })
      .detach([](kj::Exception&&) {});
}

}  // namespace dog
