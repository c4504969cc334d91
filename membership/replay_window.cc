#include "membership/replay_window.h"

namespace dog::membership {

bool ReplayWindow::accept(std::string_view sender, uint64_t session, uint64_t counter) {
  auto it = senders_.find(std::string(sender));
  if (it == senders_.end()) {
    senders_.emplace(std::string(sender), State{session, counter, 1});
    return true;
  }
  State& s = it->second;
  if (session < s.session) return false;
  if (session > s.session) {
    s = State{session, counter, 1};
    return true;
  }
  if (counter > s.highest) {
    const uint64_t shift = counter - s.highest;
    s.bitmap = shift >= 64 ? 1 : (s.bitmap << shift) | 1;
    s.highest = counter;
    return true;
  }
  const uint64_t age = s.highest - counter;
  if (age >= 64) return false;
  const uint64_t bit = uint64_t{1} << age;
  if (s.bitmap & bit) return false;
  s.bitmap |= bit;
  return true;
}

void ReplayWindow::forget(std::string_view sender) { senders_.erase(std::string(sender)); }

}  // namespace dog::membership
