#include "node/runtime/fanout_pressure.h"

#include <algorithm>

namespace dog {

void FanoutPressure::queued(const std::string& gid, const http::WebSocket& receiver) {
  if (!receiver.is_open() || receiver.buffered_bytes() <= http::kBacklogBytes) return;
  if (!behind_in_.emplace(receiver.id(), gid).second) return;  // already counted
  groups_[gid].behind++;
}

void FanoutPressure::published(const std::string& gid, const std::shared_ptr<http::WebSocket>& publisher) {
  auto it = groups_.find(gid);
  if (it == groups_.end() || it->second.behind == 0 || !publisher) return;
  if (!held_in_.emplace(publisher->id(), gid).second) return;  // already held
  it->second.held.push_back({publisher->id(), publisher});
  publisher->pause_reading();
  stats_.pauses++;
}

bool FanoutPressure::behind(const std::string& gid) const {
  auto it = groups_.find(gid);
  return it != groups_.end() && it->second.behind > 0;
}

void FanoutPressure::gone(uint64_t id) {
  if (auto h = held_in_.find(id); h != held_in_.end()) {
    auto g = groups_.find(h->second);
    if (g != groups_.end()) std::erase_if(g->second.held, [id](const Held& x) { return x.id == id; });
    held_in_.erase(h);
  }
  caught_up(id);
}

void FanoutPressure::caught_up(uint64_t id) {
  auto b = behind_in_.find(id);
  if (b == behind_in_.end()) return;
  std::string gid = std::move(b->second);
  behind_in_.erase(b);
  auto g = groups_.find(gid);
  if (g == groups_.end()) return;
  if (g->second.behind > 0) g->second.behind--;
  if (g->second.behind == 0) release(gid);
}

void FanoutPressure::release(const std::string& gid) {
  auto g = groups_.find(gid);
  if (g == groups_.end()) return;
  auto held = std::move(g->second.held);
  groups_.erase(g);  // nothing behind, nobody held: forget the Group
  for (auto& h : held) {
    held_in_.erase(h.id);
    if (auto ws = h.ws.lock()) {
      ws->resume_reading();
      stats_.resumes++;
    }
  }
}

}  // namespace dog
