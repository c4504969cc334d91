// Lifeguard local health awareness (LHA-Probe, Lifeguard §IV-A; memberlist awareness.go).
//
// A score in [0, max_multiplier - 1]. The probe interval and probe timeouts are multiplied by
// (score + 1), so a member that is itself slow (missing acks and nacks it should have received)
// backs off instead of accusing healthy peers. Events and deltas:
//   probe acked: -1;  probe failed: +(expected nacks - received nacks), or +1 if none expected;
//   had to refute a suspicion of ourselves: +1.
#pragma once

#include <cstdint>

#include "membership/types.h"

namespace dog::membership {

class Awareness {
 public:
  // max_multiplier == 1 disables the mechanism (score stays 0).
  explicit Awareness(uint32_t max_multiplier) : max_(max_multiplier) {}

  void apply(int delta);
  int score() const { return score_; }
  uint32_t multiplier() const { return static_cast<uint32_t>(score_) + 1; }
  Duration scale(Duration d) const { return d * multiplier(); }

 private:
  uint32_t max_;
  int score_ = 0;
};

}  // namespace dog::membership
