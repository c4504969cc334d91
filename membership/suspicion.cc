#include "membership/suspicion.h"

#include <algorithm>

#include "membership/config.h"

namespace dog::membership {

Suspicion::Suspicion(std::string_view first_accuser, uint32_t k, TimePoint start, Duration min,
                     Duration max)
    : k_(std::min(k, kMaxConfirmations)), start_(start), min_(min), max_(max),
      first_(first_accuser) {}

bool Suspicion::confirm(std::string_view accuser) {
  if (n_ >= k_ || accuser == first_) return false;
  for (uint32_t i = 0; i < n_; ++i)
    if (seen_[i] == accuser) return false;
  seen_[n_++] = std::string(accuser);
  return true;
}

TimePoint Suspicion::deadline() const { return start_ + suspicion_timeout(min_, max_, k_, n_); }

}  // namespace dog::membership
