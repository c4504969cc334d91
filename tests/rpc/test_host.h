// An in-process object host for the rpc tests: a wire::Node served by one test node.
//
// It owns the object ids for which `owns(id)` is true in its view at `view_epoch`, and refuses
// others with "not owner, epoch view_epoch" naming `owner_hint`. Behaviour by request path:
//   /echo        -> 200, body "echo:<body>"
//   /hang        -> never answers; `cancelled` counts calls whose promise was dropped
//   /slow        -> answers after `slow_delay`
//   /big?N       -> N-byte body, streamed into responseBody when the caller passed one
//   open (streamed body) -> on finish, 200 with "bytes=<n> sum=<byte sum>"
// openSocket: /echo relays every client message back to the client (both directions);
//   /flood?N&S   sends N binary messages of S bytes to the client as fast as the stream's flow
//                control allows, then closes with 1000. `flood_sent_bytes` counts bytes handed
//                to Cap'n Proto; gossip topic "stats" returns it as text.
// fanOut: counts deliveries to its fake sockets (ids 0..sockets-1 exist).
// gossip: replies "<name>:<payload>" (or "stats" as above).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <kj/async.h>
#include <kj/timer.h>

#include "rpc/dog.capnp.h"

namespace dog::rpc::testing {

struct HostState {
  std::string name;
  uint64_t view_epoch = 1;
  std::function<bool(kj::ArrayPtr<const kj::byte> id)> owns = [](auto) { return true; };
  std::string owner_hint;
  kj::Duration slow_delay = 50 * kj::MILLISECONDS;
  uint32_t sockets = 2000;

  // Observations.
  uint64_t delivered = 0;
  uint64_t refused = 0;
  uint64_t hanging = 0;
  uint64_t cancelled = 0;
  uint64_t fanout_delivered = 0;
  uint64_t flood_sent_bytes = 0;
  uint64_t ws_from_client = 0;
  uint16_t last_close_code = 0;
};

// The Node capability of a host. `state` and `timer` must outlive it.
wire::Node::Client make_test_node(HostState& state, kj::Timer& timer);

}  // namespace dog::rpc::testing
