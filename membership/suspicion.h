// Lifeguard dynamic suspicion timer (LHA-Suspicion; memberlist suspicion.go), without any clock:
// it computes deadlines and the owner schedules them.
//
// A suspicion starts at `max` and shrinks towards `min` as independent accusers confirm it:
//   timeout(c) = max - log(c+1)/log(k+1) * (max - min)           (config.h suspicion_timeout)
// The accuser that started the suspicion does not count; each other accuser counts once, and at
// most k are remembered. With k == 0 or min == max the timeout is simply `min` (plain SWIM).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "membership/types.h"

namespace dog::membership {

class Suspicion {
 public:
  static constexpr uint32_t kMaxConfirmations = 8;

  Suspicion() = default;
  Suspicion(std::string_view first_accuser, uint32_t k, TimePoint start, Duration min,
            Duration max);

  // Records an accusation. Returns true if it is a new independent confirmation (the caller then
  // re-gossips it and re-schedules deadline()).
  bool confirm(std::string_view accuser);

  TimePoint deadline() const;
  uint32_t confirmations() const { return n_; }
  TimePoint start() const { return start_; }

 private:
  uint32_t k_ = 0;
  uint32_t n_ = 0;
  TimePoint start_{};
  Duration min_{}, max_{};
  std::string first_;
  std::array<std::string, kMaxConfirmations> seen_;
};

}  // namespace dog::membership
