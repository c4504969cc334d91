// dog::admin probes: what /metrics measures itself rather than reads from a layer's counters.
//
// * Process figures from /proc/self (Linux): resident memory and open file descriptors.
// * LoopLag: a periodic timer on the node's loop that records how late it fires. Every
//   interval it arms for now + interval; when it runs, now - deadline is the time the loop
//   spent busy elsewhere (a handler that blocks, a burst of work), observed into a histogram.
//   Cost: one timer wake-up per interval (default 100 ms).
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "node/admin/metrics.h"

namespace dog::admin {

// Resident set size in bytes (/proc/self/statm), or nullopt if it cannot be read.
std::optional<uint64_t> process_resident_bytes();
// Open file descriptors (entries of /proc/self/fd), or nullopt if it cannot be read.
std::optional<uint64_t> process_open_fds();
// The soft RLIMIT_NOFILE, or nullopt.
std::optional<uint64_t> process_max_fds();

class LoopLag {
 public:
  LoopLag(asio::io_context& io, std::chrono::milliseconds interval);
  ~LoopLag();
  LoopLag(const LoopLag&) = delete;
  LoopLag& operator=(const LoopLag&) = delete;

  // Starts measuring; stop() (or destruction) cancels the timer.
  void start();
  void stop();
  // Lateness of each wake-up, in seconds.
  const Histogram& histogram() const { return state_->hist; }
  // Wake-ups so far (the loop answered this many times).
  uint64_t ticks() const { return state_->hist.count(); }

 private:
  // Shared with the pending completion, which may run after stop() or destruction.
  struct State {
    Histogram hist{latency_buckets()};
    bool running = false;
  };
  void arm();
  asio::steady_timer timer_;
  std::chrono::milliseconds interval_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace dog::admin
