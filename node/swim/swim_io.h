// Per-loop services shared by every SwimHost on one node::Loop: the steady clock, one timer
// queue, and the datagram receive buffer.
//
// * SteadyClock implements membership::Clock with std::chrono::steady_clock (CLOCK_MONOTONIC),
//   in microseconds since its epoch. The same clock stamps the JSON events of dog-swim-node, so
//   timestamps from different processes on one host are comparable.
// * TimerQueue multiplexes any number of membership::Timer clients onto ONE asio::steady_timer,
//   always armed to the earliest pending wake-up. A process hosting 500 members (dog-swim-bench)
//   therefore re-arms one kernel-facing timer instead of 500. Superseded wake-ups stay in the
//   heap as stale entries (generation check) and are purged when the heap grows past a bound.
// * The receive buffer is reused by every UDP socket on the loop: datagrams are drained and
//   delivered synchronously, so one 64 KiB buffer serves all of them.
//
// Thread-safety: none; everything belongs to the loop whose io_context it was built on.
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <vector>

#include "membership/clock.h"

namespace dog::node::swim {

class SteadyClock final : public membership::Clock {
 public:
  membership::TimePoint now() const override;
  static membership::TimePoint read();  // the same value, without an instance
};

class TimerQueue;

// One client of a TimerQueue: a membership::Timer that calls `fire` at (or after) the earliest
// requested time. Destroying it cancels its pending wake-up.
class QueuedTimer final : public membership::Timer {
 public:
  QueuedTimer(TimerQueue& q, std::function<void()> fire);
  ~QueuedTimer() override;
  QueuedTimer(const QueuedTimer&) = delete;
  QueuedTimer& operator=(const QueuedTimer&) = delete;

  void wake_at(membership::TimePoint at) override;

 private:
  friend class TimerQueue;
  TimerQueue& q_;
  std::function<void()> fire_;
  uint32_t slot_;
  membership::TimePoint armed_ = membership::TimePoint::max();
};

class TimerQueue {
 public:
  // `quantum`: the Asio timer is armed only at multiples of it (rounded up), so wake-ups of many
  // clients that fall in one quantum share one timerfd re-arm and one loop wake-up. Clients fire
  // at most one quantum late, never early. Measured with 500 members in one process
  // (docs/membership-transport.md): every re-arm costs two timerfd_settime calls, which were a
  // quarter of the process's CPU; quantum 2 / 5 / 10 ms gave 3.27 / 3.03 / 2.70 % of a core.
  explicit TimerQueue(asio::io_context& io,
                      std::chrono::microseconds quantum = std::chrono::milliseconds(10));
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  size_t clients() const { return live_clients_; }
  size_t heap_size() const { return heap_.size(); }
  uint64_t fires() const { return fires_; }

 private:
  friend class QueuedTimer;
  struct Entry {
    membership::TimePoint at;
    uint32_t slot;
    uint64_t gen;
    bool operator>(const Entry& o) const { return at > o.at; }
  };
  struct Slot {
    QueuedTimer* timer = nullptr;
    uint64_t gen = 0;
  };

  uint32_t attach(QueuedTimer* t);
  void detach(uint32_t slot);
  void push(uint32_t slot, membership::TimePoint at);
  void arm();
  void on_fire();
  void purge_stale();

  membership::TimePoint quantise(membership::TimePoint t) const;

  asio::steady_timer timer_;
  const membership::Duration quantum_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  size_t live_clients_ = 0;
  membership::TimePoint armed_at_ = membership::TimePoint::max();
  uint64_t fires_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Everything SwimHosts on one loop share.
class SwimIo {
 public:
  explicit SwimIo(asio::io_context& io, std::chrono::microseconds timer_quantum = kDefaultQuantum)
      : io_(io), timers_(io, timer_quantum), recv_buf_(kRecvBufferBytes) {}
  // 10 ms: 1 % of the LAN period, 5 % of its probe timeout; see TimerQueue.
  static constexpr std::chrono::microseconds kDefaultQuantum{10000};
  SwimIo(const SwimIo&) = delete;
  SwimIo& operator=(const SwimIo&) = delete;

  // Larger than any UDP payload, so an oversized datagram is seen whole and dropped as such
  // instead of being silently truncated into something that might parse.
  static constexpr size_t kRecvBufferBytes = 65536;

  asio::io_context& io() { return io_; }
  SteadyClock& clock() { return clock_; }
  TimerQueue& timers() { return timers_; }
  std::vector<uint8_t>& recv_buffer() { return recv_buf_; }

 private:
  asio::io_context& io_;
  SteadyClock clock_;
  TimerQueue timers_;
  std::vector<uint8_t> recv_buf_;
};

}  // namespace dog::node::swim
