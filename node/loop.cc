#include "node/loop.h"

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <optional>

namespace dog::node {

// The KJ EventPort that lives inside an Asio io_context. See loop.h for the contract; the
// mechanics are:
// * setRunnable(true) posts one "run a KJ slice" handler; a slice that ends with KJ still
//   runnable re-posts itself, because KJ reports only empty<->runnable transitions.
// * poll() only reports cross-thread wakes. It must never pump Asio: KJ calls it from inside
//   our own handlers, and re-entering an io_context from a handler is a deadlock hazard.
// * wait() is only reached through top-level Promise::wait(); it runs one Asio handler. While
//   KJ drives, posted slices are skipped (KJ is already turning its own queue).
class Loop::Port final : public kj::EventPort {
 public:
  explicit Port(Config config)
      : config_(config),
        kj_timer_(io_),
        loop_(*this),
        wait_scope_(loop_),
        timer_impl_(kj::systemPreciseMonotonicClock().now()),
        timer_(*this) {}

  ~Port() {
    kj_timer_.cancel();
  }

  bool wait() override {
    kj_driving_ = true;
    arm_timer();
    auto guard = asio::make_work_guard(io_);  // block in run_one() instead of returning 0
    if (io_.stopped()) io_.restart();
    io_.run_one();
    kj_driving_ = false;
    advance_timer();
    if (loop_.isRunnable()) schedule();
    return woken_.exchange(false);
  }

  bool poll() override { return woken_.exchange(false); }

  void setRunnable(bool runnable) override {
    if (runnable) schedule();
  }

  void wake() const override {
    woken_.store(true);
    // `this` outlives every handler it posts (see the Loop lifetime rule).
    auto* self = const_cast<Port*>(this);
    asio::post(self->io_, [self] {
      if (!self->kj_driving_) self->wait_scope_.poll();
      self->after_slice();
    });
  }

  void schedule() {
    if (run_scheduled_) return;
    run_scheduled_ = true;
    asio::post(io_, [this] { run_slice(); });
  }

  void run_slice() {
    run_scheduled_ = false;
    if (kj_driving_) return;  // Promise::wait() is turning the queue itself
    advance_timer();
    loop_.run(config_.kj_turns_per_slice);
    after_slice();
  }

  void after_slice() {
    if (loop_.isRunnable()) schedule();
    arm_timer();
  }

  void advance_timer() { timer_impl_.advanceTo(kj::systemPreciseMonotonicClock().now()); }

  // Arms the Asio timer for KJ's earliest timer event, if it is earlier than what is armed.
  void arm_timer() {
    KJ_IF_MAYBE(next, timer_impl_.nextEvent()) {
      if (armed_ && *next >= armed_at_) return;
      armed_ = true;
      armed_at_ = *next;
      auto delay = *next - kj::systemPreciseMonotonicClock().now();
      auto ns = delay / kj::NANOSECONDS;
      kj_timer_.expires_after(std::chrono::nanoseconds(ns > 0 ? ns : 0));
      kj_timer_.async_wait([this](std::error_code ec) {
        if (ec) return;  // cancelled: re-armed earlier, or shutting down
        armed_ = false;
        advance_timer();
        if (!kj_driving_ && loop_.isRunnable()) schedule();
        arm_timer();
      });
    }
  }

  // kj::Timer that re-arms the Asio timer whenever a KJ timer is created, so timers made from
  // plain Asio handlers (outside any KJ callback) fire on time too.
  class LoopTimer final : public kj::Timer {
   public:
    explicit LoopTimer(Port& port) : port_(port) {}
    kj::TimePoint now() const override { return port_.timer_impl_.now(); }
    kj::Promise<void> atTime(kj::TimePoint time) override {
      port_.advance_timer();
      auto p = port_.timer_impl_.atTime(time);
      port_.arm_timer();
      return p;
    }
    kj::Promise<void> afterDelay(kj::Duration delay) override {
      port_.advance_timer();
      auto p = port_.timer_impl_.afterDelay(delay);
      port_.arm_timer();
      return p;
    }

   private:
    Port& port_;
  };

  Config config_;
  asio::io_context io_{1};  // concurrency hint 1: one thread, no internal locking needed
  asio::steady_timer kj_timer_;
  kj::EventLoop loop_;
  kj::WaitScope wait_scope_;
  kj::TimerImpl timer_impl_;
  LoopTimer timer_;
  bool run_scheduled_ = false;
  bool kj_driving_ = false;
  bool armed_ = false;
  kj::TimePoint armed_at_ = kj::origin<kj::TimePoint>();
  mutable std::atomic<bool> woken_{false};
};

Loop::Loop() : Loop(Config{}) {}
Loop::Loop(Config config) : port_(std::make_unique<Port>(config)) {}

Loop::~Loop() {
  // Run what KJ still has queued so its EventLoop is destroyed empty. Pending Asio handlers are
  // destroyed, not run: their owners are gone by now (see the lifetime rule in loop.h).
  port_->kj_timer_.cancel();
  port_->wait_scope_.poll();
}

asio::io_context& Loop::io() { return port_->io_; }
kj::WaitScope& Loop::wait_scope() { return port_->wait_scope_; }
kj::Timer& Loop::timer() { return port_->timer_; }
const kj::Executor& Loop::executor() { return port_->loop_.getExecutor(); }

void Loop::run() {
  auto guard = asio::make_work_guard(port_->io_);
  if (port_->io_.stopped()) port_->io_.restart();
  port_->io_.run();
}

void Loop::run_until_idle() {
  if (port_->io_.stopped()) port_->io_.restart();
  port_->io_.run();
}

void Loop::stop() { port_->io_.stop(); }

void Loop::post(std::function<void()> fn) { asio::post(port_->io_, std::move(fn)); }

void Loop::poll() {
  port_->advance_timer();
  port_->wait_scope_.poll();
  port_->after_slice();
}

}  // namespace dog::node
