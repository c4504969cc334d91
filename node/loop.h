// dog::node::Loop — one thread's event loop: an Asio io_context with KJ's event loop embedded.
//
// Contract
// --------
// * A Loop belongs to the thread that constructed it. Every object created on a Loop (sockets,
//   timers, KJ promises, Cap'n Proto capabilities, HTTP connections) is owned by that Loop and
//   must only be touched from its thread. Work crosses loops only by message: `post()` is the
//   one thread-safe entry point (plus KJ's `executor()`, for code that already speaks KJ).
// * Asio is the outer loop. KJ runs in slices of at most `Config::kj_turns_per_slice` turns,
//   scheduled as ordinary Asio handlers whenever KJ has work, so neither side starves.
// * Both driving modes work: `run()` (Asio drives, the production mode) and
//   `promise.wait(loop.wait_scope())` (KJ drives, for tests and start-up code). Never call
//   `promise.wait()` from inside an Asio handler or a KJ callback: it would nest the loop.
// * Nothing here is a singleton. A process may run several Loops, one per thread; nothing
//   assumes there is only one.
// * Lifetime: destroy everything that holds KJ promises or Asio handles (servers, streams,
//   RPC systems) before the Loop.
#pragma once

#include <asio/io_context.hpp>
#include <functional>
#include <memory>

#include <kj/async.h>
#include <kj/timer.h>

namespace dog::node {

class Loop {
 public:
  struct Config {
    // KJ turns run per Asio handler before yielding back to Asio. Larger batches amortise the
    // hand-off; smaller ones bound the latency Asio-side I/O can see. Default: 1024.
    unsigned kj_turns_per_slice = 1024;
  };

  Loop();
  explicit Loop(Config config);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  asio::io_context& io();

  // The KJ wait scope of this loop. Only for top-level `promise.wait()` in tests and start-up.
  kj::WaitScope& wait_scope();

  // A KJ timer driven by this loop's clock (CLOCK_MONOTONIC). Timers created from any code on
  // this loop's thread, KJ callback or Asio handler, fire on time.
  kj::Timer& timer();

  // KJ's cross-thread executor for this loop (for threads that run their own KJ loop).
  const kj::Executor& executor();

  // Runs until `stop()` is called (from any thread) or, if `until_idle` is set, until there is
  // no more work. REQUIRES: not already running on this thread.
  void run();
  void run_until_idle();

  // Thread-safe: asks `run()` to return.
  void stop();

  // Thread-safe: runs `fn` on this loop's thread, as its own event. This is how loops talk.
  void post(std::function<void()> fn);

  // Advances the KJ timer to now and runs ready KJ work. For tests that drive Asio by hand.
  void poll();

 private:
  class Port;
  std::unique_ptr<Port> port_;
};

}  // namespace dog::node
