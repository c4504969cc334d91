#include "membership/awareness.h"

#include <algorithm>

namespace dog::membership {

void Awareness::apply(int delta) {
  score_ = std::clamp(score_ + delta, 0, static_cast<int>(max_) - 1);
}

}  // namespace dog::membership
