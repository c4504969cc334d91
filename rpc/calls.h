// Client-side helpers over ConnectionManager for the calls in rpc/dog.capnp: delivering a
// request with at most one re-route, streaming a body, and gossip with per-peer results.
//
// Loop affinity: the manager's loop. All helpers honour the manager's limits (deadline,
// in-flight cap, dead peers) because they go through ConnectionManager::call().
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <kj/async-io.h>

#include "rpc/connection_manager.h"
#include "rpc/dog.capnp.h"
#include "rpc/errors.h"

namespace dog::rpc {

struct Target {
  std::string ns;
  std::array<uint8_t, 32> id{};  // routing::ObjectId::bytes()
};

struct Request {
  std::string method = "GET";
  std::string path = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct Routed {
  std::string node;    // owner in the caller's view
  uint64_t epoch = 0;  // the view's epoch
};

// The caller's routing view: the owner of the target at an epoch >= `at_least` (the caller may
// have to refresh its view first; returning an older epoch is allowed, then the owner's second
// refusal is final).
using Resolver = std::function<Routed(uint64_t at_least)>;

struct DeliverOutcome {
  bool not_owner = false;     // still refused after one re-route
  uint64_t refused_epoch = 0; // when not_owner: the refusing node's epoch
  std::string owner_hint;
  uint16_t status = 0;
  std::string body;
  std::string node;           // node that answered (or refused last)
  int attempts = 0;           // 1, or 2 after a re-route
};

// Delivers `request` to `target`'s owner. If the owner refuses with "not owner, epoch E", asks
// `resolve(E)` once more and re-sends; a second refusal is returned as not_owner. `deadline`
// covers each attempt.
kj::Promise<DeliverOutcome> deliver(ConnectionManager& manager, Target target, Request request,
                                    Resolver resolve, kj::Duration deadline);

// Sends `request` with its body read from `body` (streamed with Cap'n Proto flow control, in
// chunks of `chunk` bytes) to `node`. Refusal is reported as not_owner without re-routing: the
// body has been consumed by then only if the owner accepted.
kj::Promise<DeliverOutcome> deliver_streamed(ConnectionManager& manager, std::string node,
                                             uint64_t epoch, Target target, Request request,
                                             kj::AsyncInputStream& body, size_t chunk,
                                             kj::Duration deadline);

struct GossipResult {
  std::string peer;
  bool ok = false;
  std::string reply;                     // when ok
  ErrorKind error = ErrorKind::kFailed;  // when !ok
  std::string message;                   // when !ok
};

// Asks every peer in parallel; resolves once all answered or failed (each bounded by
// `deadline`), in the order of `peers`. Never rejects.
kj::Promise<std::vector<GossipResult>> gossip(ConnectionManager& manager,
                                              const std::vector<std::string>& peers,
                                              Target group, std::string topic,
                                              std::string payload, kj::Duration deadline);

// Writes everything from `in` into a `-> stream` write method (ByteStream or RequestCall),
// `chunk` bytes per call; each write waits for the stream's flow-control window. Resolves with
// the byte count at EOF.
template <typename Client>
kj::Promise<uint64_t> pump(kj::AsyncInputStream& in, Client& out, size_t chunk,
                           uint64_t done = 0) {
  auto buf = kj::heapArray<kj::byte>(chunk);
  auto read = in.tryRead(buf.begin(), 1, buf.size());
  return read.then([&in, &out, chunk, done, buf = kj::mv(buf)](size_t n) mutable
                   -> kj::Promise<uint64_t> {
    if (n == 0) return done;
    auto req = out.writeRequest(capnp::MessageSize{n / 8 + 8, 0});
    req.setData(buf.slice(0, n));
    return req.send().then([&in, &out, chunk, done, n]() {
      return pump(in, out, chunk, done + n);
    });
  });
}

// Fills the wire builders from plain values.
void set_target(wire::ObjectRef::Builder b, const Target& t);
void set_head(wire::RequestHead::Builder b, const Request& r);

}  // namespace dog::rpc
