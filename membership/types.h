// Plain value types shared by the membership core, its wire codec and its host.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dog::membership {

// Time is a count of microseconds since an epoch chosen by the host (monotonic in production,
// virtual in the simulator). The core never reads an OS clock; it only compares these values.
using Duration = std::chrono::microseconds;
using TimePoint = std::chrono::microseconds;

// Liveness of a member as seen locally. Precedence rules (SWIM §4.2, memberlist):
//   alive(i) overrides suspect/alive(j) if i > j; suspect(i) overrides suspect/alive(j) if i >= j;
//   dead/left override alive/suspect of the same or lower incarnation; only alive(i) with a
//   strictly newer incarnation brings a dead or left member back.
enum class MemberState : uint8_t { kAlive = 0, kSuspect = 1, kDead = 2, kLeft = 3 };

const char* to_string(MemberState s);

// Incarnations at or above this are dropped on receipt and ours never exceeds it, so a refutation
// (accused + 1) can never wrap to 0 (issue 12 item 19). Honest members start at 1 and need one
// step per refutation or metadata change: unreachable in practice.
inline constexpr uint64_t kMaxIncarnation = uint64_t{1} << 62;

// Member metadata gossiped with every alive update. The encoded size is capped by
// Config::max_meta_bytes; an oversized local Meta is rejected by Swim::set_meta().
struct Meta {
  std::string rpc_addr;       // host:port of the node's RPC endpoint
  std::string http_addr;      // host:port of the node's HTTP endpoint
  std::string zone;           // failure domain, e.g. "eu-west-1a"
  uint32_t capacity = 1;      // relative weight for placement
  std::string build_version;  // e.g. "dog 0.1.0 (abc1234)"
  uint32_t load = 0;          // live Replicas on the node, published for placement (set_meta)

  size_t byte_size() const {
    return rpc_addr.size() + http_addr.size() + zone.size() + build_version.size() + 8;
  }
  bool operator==(const Meta&) const = default;
};

// A snapshot of one member as seen locally.
//
// Identity of a member is (name, session). `session` is the member's Config::session_id, one per
// process run and strictly increasing across restarts of one name (SwimHost uses the realtime
// clock in ns). A member seen with the same name and a higher session is a NEW member: the old
// one is reported dead, the new one joins (docs/membership.md, "Restarts"). 0 = unknown (learned
// from a peer that predates sessions on the wire): incarnations alone decide, as before.
struct MemberInfo {
  std::string name;
  std::string addr;  // datagram/stream address understood by the Transport
  uint64_t incarnation = 0;
  MemberState state = MemberState::kAlive;
  Meta meta;
  uint64_t session = 0;
};

}  // namespace dog::membership
