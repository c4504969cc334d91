#include "membership/replay_window.h"

namespace dog::membership {

bool ReplayWindow::accept(std::string_view sender, uint64_t session, uint64_t counter) {
  auto it = senders_.find(std::string(sender));
  if (it == senders_.end()) {
    if (senders_.size() >= capacity_) {
      senders_.erase(lru_.back());
      lru_.pop_back();
      ++evictions_;
    }
    lru_.emplace_front(sender);
    senders_.emplace(std::string(sender), State{session, counter, 1, lru_.begin()});
    return true;
  }
  State& s = it->second;
  if (session < s.session) return false;
  if (session > s.session) {
    s.session = session;
    s.highest = counter;
    s.bitmap = 1;
  } else if (counter > s.highest) {
    const uint64_t shift = counter - s.highest;
    s.bitmap = shift >= 64 ? 1 : (s.bitmap << shift) | 1;
    s.highest = counter;
  } else {
    const uint64_t age = s.highest - counter;
    if (age >= 64) return false;
    const uint64_t bit = uint64_t{1} << age;
    if (s.bitmap & bit) return false;
    s.bitmap |= bit;
  }
  lru_.splice(lru_.begin(), lru_, s.lru);
  return true;
}

}  // namespace dog::membership
