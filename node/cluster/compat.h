// Shims over APIs that neighbouring layers add in the same change (issue 11), so this folder
// builds whichever side lands first. Each one falls back to a documented minimal behaviour.
// Delete a shim once its API is in every build: nothing else depends on this header.
#pragma once

#include <cstdint>

#include "membership/types.h"

namespace dog::node::cluster::compat {

// MemberInfo::session: the member's process incarnation (0 = unknown).
template <typename M>
uint64_t session_of(const M& m) {
  if constexpr (requires { m.session; })
    return m.session;
  else
    return 0;
}

// Meta::load: the live Replica count a node publishes.
template <typename M>
uint32_t load_of(const M& meta) {
  if constexpr (requires { meta.load; })
    return meta.load;
  else
    return 0;
}
template <typename M>
void set_load(M& meta, uint32_t v) {
  if constexpr (requires { meta.load; }) meta.load = v;
}

}  // namespace dog::node::cluster::compat
