#include "membership/broadcast_queue.h"

#include <limits>

namespace dog::membership {

namespace {
constexpr size_t kMinUpdateBytes = 24;  // nothing smaller fits; stop scanning below this budget
constexpr size_t kMaxMisses = 16;       // stop after this many updates that do not fit
}  // namespace

std::string BroadcastQueue::key_of(const Update& u, BroadcastClass cls) {
  if (cls == BroadcastClass::kSystem) return u.node;
  std::string k = "\x01";
  k += u.node;
  k += '#';
  k += std::to_string(u.incarnation);
  return k;
}

void BroadcastQueue::erase_key(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  if (std::get<0>(it->second) == static_cast<uint8_t>(BroadcastClass::kUser)) --user_count_;
  items_.erase(it->second);
  index_.erase(it);
}

void BroadcastQueue::erase(const std::string& node) { erase_key(node); }

void BroadcastQueue::push(const Update& u, BroadcastClass cls) {
  std::string key = key_of(u, cls);
  erase_key(key);
  // Newest first: ids count down so that a larger "age" sorts later.
  Order order{static_cast<uint8_t>(cls), 0, std::numeric_limits<uint64_t>::max() - next_id_++};
  Item item{u, key, encoded_size_estimate(u)};
  index_.emplace(key, order);
  items_.emplace(order, std::move(item));
  if (cls == BroadcastClass::kUser && ++user_count_ > max_user_) {
    // Drop the oldest user update (largest id value among user items with most transmissions is
    // not tracked; a linear scan over user items is fine because this path is rare).
    auto oldest = items_.end();
    for (auto it = items_.lower_bound(Order{1, 0, 0}); it != items_.end(); ++it)
      if (oldest == items_.end() || std::get<2>(it->first) > std::get<2>(oldest->first)) oldest = it;
    if (oldest != items_.end()) erase_key(oldest->second.key);
  }
}

size_t BroadcastQueue::take(size_t budget, uint32_t limit, size_t max_count,
                            std::vector<Update>& out) {
  size_t used = 0, misses = 0, taken = 0;
  std::vector<decltype(items_)::node_type> requeue;
  auto it = items_.begin();
  while (it != items_.end() && taken < max_count && budget - used >= kMinUpdateBytes &&
         misses < kMaxMisses) {
    if (it->second.estimate > budget - used) {
      ++misses;
      ++it;
      continue;
    }
    used += it->second.estimate;
    out.push_back(it->second.update);
    ++taken;
    auto next = std::next(it);
    auto node = items_.extract(it);
    it = next;
    auto& [cls, transmits, id] = node.key();
    if (++transmits >= limit) {
      if (cls == static_cast<uint8_t>(BroadcastClass::kUser)) --user_count_;
      index_.erase(node.mapped().key);
    } else {
      index_[node.mapped().key] = node.key();
      requeue.push_back(std::move(node));
    }
  }
  for (auto& node : requeue) items_.insert(std::move(node));
  return used;
}

}  // namespace dog::membership
