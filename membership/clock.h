// Time seams injected into the core. Production implements them on the node/ event loop; the
// simulator implements them with a virtual clock. Neither is ever read from a global.
#pragma once

#include "membership/types.h"

namespace dog::membership {

// Source of the current time. REQUIRES: non-decreasing between calls.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

// One-shot wake-up service. The core keeps its own deadline heap and only asks the host to call
// Swim::on_timer() once the clock reaches `at` (or later; calling earlier or spuriously is
// harmless). A later request supersedes an earlier one only if it is sooner: the host may keep a
// single timer per Swim instance and re-arm it to the minimum.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void wake_at(TimePoint at) = 0;
};

}  // namespace dog::membership
