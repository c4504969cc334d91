// Membership events delivered to subscribers (routing/, node/).
//
// Every event carries the view epoch: a per-node counter that increases by exactly one with each
// event this node emits, so a subscriber can tell which of two views is newer and detect gaps.
// Callbacks run synchronously on the core's event loop: they MUST NOT block and MUST NOT call
// back into the Swim instance that emitted them (queue work instead).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "membership/types.h"

namespace dog::membership {

// A restart (same name, higher MemberInfo::session) is reported as kDead of the old session
// (member->session is the old one) immediately followed by kJoin of the new session: everything
// the subscriber held for the old run is gone.
enum class EventKind : uint8_t {
  kJoin = 0,     // a member became alive (first sighting, rejoin with a newer incarnation, restart)
  kUpdate = 1,   // an alive member's metadata changed
  kSuspect = 2,  // a member became suspect
  kAlive = 3,    // a suspect member refuted the suspicion
  kDead = 4,     // a member was declared dead
  kLeave = 5,    // a member left gracefully
};

const char* to_string(EventKind k);

struct Event {
  EventKind kind;
  const MemberInfo* member;  // valid only during the callback
  uint64_t view_epoch;
  // True for kSuspect/kDead raised by this node's own probe or suspicion timer, false when the
  // state was learned from a peer. The simulator uses it to count false detections at their origin.
  bool local_origin = false;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void on_member_event(const Event& e) = 0;
  // A user broadcast (Swim::broadcast_user) from `origin`, delivered once per (origin, seq).
  virtual void on_user_message(std::string_view origin, std::span<const uint8_t> payload) {}
  // This node's own standing as its peers report it (issue 11: a node must learn when it has
  // been suspected or declared dead, and stop serving until it is back). Called with
  //  * kSuspect, kDead or kLeft and the accused incarnation when an accusation of this run
  //    (our session, at or above our incarnation) reaches us: gossip, a buddy ping, a push/pull;
  //  * then kAlive and our new, higher incarnation once we have refuted it (the refutation is
  //    queued for gossip at that moment; peers that declared us dead take us back on receipt).
  // Not called while leaving, nor for accusations of an older run of our name.
  virtual void on_self_state(MemberState state, uint64_t incarnation) {}
};

}  // namespace dog::membership
