// Internal helpers shared by the core's translation units (not part of the API).
#pragma once

#include <cstdint>
#include <string_view>

#include "membership/types.h"

namespace dog::membership::detail {

inline uint64_t fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}
inline uint64_t mix(uint64_t x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
  return x;
}
inline bool is_live(MemberState s) { return s == MemberState::kAlive || s == MemberState::kSuspect; }
// Order of an update's session against the one we know: -1 older run, 1 newer run, 0 the same
// run or unknown (0 on either side: an older peer; incarnations alone decide).
inline int session_order(uint64_t update_session, uint64_t known) {
  if (update_session == 0 || known == 0 || update_session == known) return 0;
  return update_session < known ? -1 : 1;
}

}  // namespace dog::membership::detail
