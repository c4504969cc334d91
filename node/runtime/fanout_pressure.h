// Internal: the overload policy of one node's fan-out (issue 13). The publisher is slowed
// first: while any receiver of a Group on this node is behind (more than http::kBacklogBytes
// queued when a cast reached it), the sockets on this node that publish to that Group stop
// being read, and TCP pushes back on their clients. When the last receiver of the Group has
// caught up (its queue was fully written: on_drain) or is gone (on_close, e.g. closed with 1013
// by the front door's cap or ws_slow_timeout), every held publisher is read again.
//
// Node-local: a publisher is held only by receivers on the node its client is connected to.
// Sockets are known by WebSocket::id(), never by pointer; held publishers by weak reference.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dog/websocket.h"

namespace dog {

class FanoutPressure {
 public:
  // A cast of Group `gid` was just queued on `receiver`: behind if over http::kBacklogBytes.
  void queued(const std::string& gid, const http::WebSocket& receiver);
  // `publisher` sent a cast of Group `gid`: paused and held while the Group has receivers behind.
  void published(const std::string& gid, const std::shared_ptr<http::WebSocket>& publisher);
  // Socket `id` drained (on_drain): no longer behind. Resumes the held publishers of its Group
  // when it was the last receiver behind. A publisher that is also a receiver (a broadcast to
  // itself) stays held until then.
  void caught_up(uint64_t id);
  // Socket `id` closed: neither behind nor held any more.
  void gone(uint64_t id);
  // True while socket `id` is held: flow control elsewhere must not resume its reading.
  bool holding(uint64_t id) const { return held_in_.count(id) != 0; }
  bool behind(const std::string& gid) const;

  struct Stats {
    uint64_t pauses = 0;   // publishers paused because their Group's fan-out was behind
    uint64_t resumes = 0;  // ... and read again once it caught up
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Held {
    uint64_t id;
    std::weak_ptr<http::WebSocket> ws;
  };
  struct Group {
    size_t behind = 0;
    std::vector<Held> held;
  };
  void release(const std::string& gid);
  std::unordered_map<std::string, Group> groups_;
  std::unordered_map<uint64_t, std::string> behind_in_;  // receiver id -> its Group
  std::unordered_map<uint64_t, std::string> held_in_;    // publisher id -> its Group
  Stats stats_;
};

}  // namespace dog
