// Piggyback broadcast queue (SWIM §4.1 infection-style dissemination; memberlist queue.go).
//
// Every accepted membership update is queued here and attached to outgoing datagrams until it
// has been sent `limit` times (retransmit_limit = retransmit_mult * ceil(log10(N+1))).
// Order of selection: system updates (alive/suspect/dead/left) before user payloads (so user
// traffic can never starve failure detection, memberlist #299), then fewest transmissions first,
// then newest first. A new system update about a node replaces the queued one about that node.
// Selection is O(k log n) for k updates taken; nothing is O(queue) per packet.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "membership/wire.h"

namespace dog::membership {

enum class BroadcastClass : uint8_t { kSystem = 0, kUser = 1 };

class BroadcastQueue {
 public:
  explicit BroadcastQueue(size_t max_user = 256) : max_user_(max_user) {}

  // Queues `u` with zero transmissions. System updates are keyed by u.node and replace the
  // previous update about that node; user updates are keyed by (origin, seq). When more than
  // max_user user updates are queued the oldest is dropped.
  void push(const Update& u, BroadcastClass cls);

  // Appends to `out` queued updates whose estimated encoded size fits in `budget` bytes, in
  // selection order, counting one transmission for each; updates reaching `limit` are removed.
  // At most `max_count` updates are taken. Returns the estimated bytes used.
  size_t take(size_t budget, uint32_t limit, size_t max_count, std::vector<Update>& out);

  // Drops the queued system update about `node`, if any (e.g. after we saw a newer one).
  void erase(const std::string& node);

  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  size_t user_size() const { return user_count_; }

 private:
  // (class, transmits, newest-first id)
  using Order = std::tuple<uint8_t, uint32_t, uint64_t>;
  struct Item {
    Update update;
    std::string key;
    size_t estimate = 0;
  };
  static std::string key_of(const Update& u, BroadcastClass cls);
  void erase_key(const std::string& key);

  std::map<Order, Item> items_;
  std::unordered_map<std::string, Order> index_;
  uint64_t next_id_ = 0;
  size_t max_user_;
  size_t user_count_ = 0;
};

}  // namespace dog::membership
