// Counters kept by the membership core. Plain integers, read by the host for metrics.
#pragma once

#include <cstdint>

namespace dog::membership {

struct Stats {
  // Traffic, counting sealed bytes (what the transport carries, without IP/UDP headers).
  uint64_t datagrams_sent = 0;
  uint64_t datagram_bytes_sent = 0;
  uint64_t max_datagram_bytes = 0;
  uint64_t streams_sent = 0;
  uint64_t stream_bytes_sent = 0;
  uint64_t datagrams_received = 0;
  uint64_t streams_received = 0;

  // Inbound packets dropped before they could change any state.
  uint64_t dropped_oversized = 0;   // longer than max_datagram_bytes / max_stream_bytes
  uint64_t dropped_auth = 0;        // no installed key authenticates it (or unknown version)
  uint64_t dropped_malformed = 0;   // authenticated but not a valid message within limits
  uint64_t dropped_replay = 0;      // (sender, session, counter) already seen or too old
  uint64_t dropped_misdirected = 0; // a ping meant for another node name
  // Updates ignored (not counted in dropped_total: the packet itself was fine).
  uint64_t stale_session_updates = 0;  // about an older run (session) of a member, or of us
  uint64_t bad_incarnations = 0;       // incarnation >= kMaxIncarnation (never produced honestly)
  uint64_t self_session_conflicts = 0; // an alive of our name with a newer session: duplicate name
  uint64_t graveyard_rejections = 0;   // second-hand alive of a reaped member, not newer than its death
  uint64_t dropped_table_full = 0;     // new member while max_members slots are all live
  uint64_t tombstones_trimmed = 0;     // dead/left records left out of full push/pulls (cap)

  // Protocol activity.
  uint64_t probes = 0;
  uint64_t probe_failures = 0;       // probes that ended in a suspicion
  uint64_t probes_inconclusive = 0;  // failed, but no relay answered either: no accusation (yet)
  uint64_t quiet_suspicions = 0;     // raised past inconclusive_probe_limit; kept local
  uint64_t restarts_seen = 0;        // members replaced by a newer session of the same name
  uint64_t indirect_probes = 0;      // ping-req sent
  uint64_t nacks_received = 0;
  uint64_t suspicions_raised = 0;    // by our own probes
  uint64_t refutations = 0;          // times we refuted a suspicion/death of ourselves
  uint64_t deaths_declared = 0;      // by our own suspicion timers
  uint64_t push_pulls = 0;           // initiated
  uint64_t full_syncs = 0;           // full-state frames sent
  uint64_t packer_trims = 0;         // updates removed after the MTU check failed an estimate

  uint64_t dropped_total() const {
    return dropped_oversized + dropped_auth + dropped_malformed + dropped_replay;
  }
};

}  // namespace dog::membership
