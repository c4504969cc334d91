#include "node/swim/swim_io.h"

#include <chrono>

namespace dog::node::swim {

using membership::TimePoint;

TimePoint SteadyClock::read() {
  return std::chrono::duration_cast<TimePoint>(std::chrono::steady_clock::now().time_since_epoch());
}

TimePoint SteadyClock::now() const {
  return read();
}

// ---------------------------------------------------------------------------------------------

QueuedTimer::QueuedTimer(TimerQueue& q, std::function<void()> fire)
    : q_(q), fire_(std::move(fire)), slot_(q.attach(this)) {}

QueuedTimer::~QueuedTimer() {
  q_.detach(slot_);
}

void QueuedTimer::wake_at(TimePoint at) {
  // A request later than the pending one changes nothing (the core re-requests after it fires).
  if (at >= armed_) return;
  armed_ = at;
  q_.push(slot_, at);
}

// ---------------------------------------------------------------------------------------------

TimerQueue::TimerQueue(asio::io_context& io, std::chrono::microseconds quantum)
    : timer_(io), quantum_(quantum.count() > 0 ? quantum : std::chrono::microseconds(1)) {}

TimePoint TimerQueue::quantise(TimePoint t) const {
  if (t == TimePoint::max()) return t;
  const auto q = quantum_.count();
  const auto c = t.count();
  return TimePoint(c >= 0 ? (c + q - 1) / q * q : c / q * q);
}

TimerQueue::~TimerQueue() {
  *alive_ = false;
  timer_.cancel();
}

uint32_t TimerQueue::attach(QueuedTimer* t) {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(Slot{});
  }
  slots_[slot].timer = t;
  ++slots_[slot].gen;
  ++live_clients_;
  return slot;
}

void TimerQueue::detach(uint32_t slot) {
  slots_[slot].timer = nullptr;
  ++slots_[slot].gen;  // every heap entry of this slot is now stale
  free_.push_back(slot);
  --live_clients_;
}

void TimerQueue::push(uint32_t slot, TimePoint at) {
  const uint64_t gen = ++slots_[slot].gen;
  heap_.push(Entry{at, slot, gen});
  // Stale entries are normally few (a client re-arms earlier only a handful of times per
  // period), but bound them anyway: a rebuild is O(heap) and rare.
  if (heap_.size() > 4 * slots_.size() + 1024) purge_stale();
  if (quantise(at) < armed_at_) arm();
}

void TimerQueue::purge_stale() {
  std::vector<Entry> keep;
  keep.reserve(slots_.size());
  while (!heap_.empty()) {
    const Entry e = heap_.top();
    heap_.pop();
    if (slots_[e.slot].timer && slots_[e.slot].gen == e.gen) keep.push_back(e);
  }
  heap_ = decltype(heap_)(std::greater<Entry>(), std::move(keep));
}

void TimerQueue::arm() {
  // Drop stale entries at the top so the timer is not armed for nothing.
  while (!heap_.empty()) {
    const Entry& e = heap_.top();
    if (slots_[e.slot].timer && slots_[e.slot].gen == e.gen) break;
    heap_.pop();
  }
  if (heap_.empty()) {
    if (armed_at_ != TimePoint::max()) timer_.cancel();
    armed_at_ = TimePoint::max();
    return;
  }
  const TimePoint next = quantise(heap_.top().at);
  if (next == armed_at_) return;
  armed_at_ = next;
  timer_.expires_at(std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(next)));
  timer_.async_wait([this, alive = alive_](std::error_code ec) {
    if (!*alive || ec) return;  // cancelled: re-armed to an earlier time, or shutting down
    armed_at_ = TimePoint::max();
    on_fire();
  });
}

void TimerQueue::on_fire() {
  const TimePoint now = SteadyClock::read();
  // Bounded batch: each due entry is popped once; callbacks may push new entries, but those are
  // at a later time (the core never asks for a wake-up in the past... and if it does, it is run
  // in the next batch, after Asio had a chance to run I/O).
  size_t budget = heap_.size();
  while (!heap_.empty() && budget-- > 0) {
    const Entry e = heap_.top();
    if (e.at > now) break;
    heap_.pop();
    Slot& s = slots_[e.slot];
    if (!s.timer || s.gen != e.gen) continue;
    ++s.gen;
    QueuedTimer* t = s.timer;
    t->armed_ = TimePoint::max();
    ++fires_;
    t->fire_();  // may re-arm itself, destroy other clients, or add new ones
  }
  arm();
}

}  // namespace dog::node::swim
