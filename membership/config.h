// Membership configuration: one struct, three presets, and the protocol formulas as pure
// functions (tested with tables in tests/membership/config_test.cc).
//
// Notation: T = probe_interval (one protocol period), N = number of live members known locally.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "membership/types.h"

namespace dog::membership {

struct Config {
  // --- Failure detection (SWIM §3.1, §4.3) ---

  // T: one probe per period, to the next member of a shuffled round-robin order. Scaled by the
  // local health multiplier (awareness score + 1). Lower = faster detection, more traffic.
  Duration probe_interval = std::chrono::milliseconds(1000);
  // How long to wait for a direct ack before re-pinging (probe_retry) or, without retry, before
  // asking `indirect_checks` members to probe (ping-req). Scaled by the health multiplier. Must
  // exceed the p99 round trip.
  Duration probe_timeout = std::chrono::milliseconds(200);
  // Extra time, after probe_timeout, for retry/indirect acks and nacks before the target is
  // suspected:  suspect at probe start + (probe_timeout + indirect_timeout) * multiplier <= T.
  Duration indirect_timeout = std::chrono::milliseconds(300);
  // With probe_retry: wait this long for the retried ping before sending ping-reqs. Relays then
  // nack after nack_fraction * (indirect_timeout - retry_timeout), so their answer lands before
  // the origin's deadline. Lifeguard's footnote 5 uses 80 %, which leaves 40 ms on the LAN preset:
  // measured with dog-swim-sim (N=100, 5 % loss, 1200 periods), 40 ms of link jitter then makes
  // half the nacks late (267 of ~560 arrive) and 60 ms 70 %, each late nack wrongly raising the
  // prober's health score. 60 % leaves 80 ms (LAN) and loses none at 40 ms (554) or 60 ms (613),
  // while the relay still waits 120 ms for the target: far above a LAN round trip.
  Duration retry_timeout = std::chrono::milliseconds(100);
  double nack_fraction = 0.6;
  // Every n-th probe goes to our successor on a hash ring of live members instead of the next
  // round-robin member (0 = pure SWIM round-robin). With agreeing views every member then has
  // exactly one such prober, so a crash is probed within n periods (first-suspicion p99 about
  // n + 0.5 T instead of ~5 T for N-independent round-robin choices, whose first probe of a given
  // member is ~Exp(1) periods away). The other probes keep SWIM's shuffled round-robin and its
  // coverage; the round-robin bound becomes n/(n-1) * (2N-1) periods.
  uint32_t successor_probe_every = 2;
  // k: members asked to probe indirectly. False-suspicion probability falls exponentially in k
  // (SWIM §3.1). memberlist uses 3; because the indirect phase only runs after the retried ping
  // also failed (probe_retry), k = 5 costs almost nothing in steady state and, at 5 % loss, cuts
  // false suspicions ~30x (each of which costs a cluster-wide suspect + refute broadcast).
  uint32_t indirect_checks = 5;
  // Re-send the direct ping at probe_timeout, and start the indirect phase only if that one also
  // stays unanswered for retry_timeout. Under independent loss p a probe fails only if both
  // direct exchanges and all k indirect ones fail:
  //   ~ (1-(1-p)^2)^2 * (1-(1-p)^4)^k   (6e-5 at p=5 %, k=3, versus 6e-4 without the retry),
  // and the 4k-message indirect exchange runs for ~(1-(1-p)^2)^2 of probes instead of 1-(1-p)^2.
  bool probe_retry = true;
  // Lifeguard: a probe answered by neither an ack nor a single nack from its k relays suggests
  // that *we* cannot hear (slow, overloaded, cut off), so it raises our health score and accuses
  // nobody -- but only for this many consecutive probes. Any ack or nack resets the count; the
  // next silent probe after the limit suspects its target as memberlist does. Without the limit
  // a survivor whose relays are all dead (3 members, 2 crash) would never accuse anyone.
  // 0 = always suspect (memberlist).
  uint32_t inconclusive_probe_limit = 1;

  // --- Suspicion (SWIM §4.2, Lifeguard LHA-Suspicion) ---

  // min = suspicion_mult * max(1, log10(N)) * T                     (suspicion_timeout_min)
  // max = suspicion_max_mult * min                                 (Lifeguard only; else max=min)
  // timeout(c) = max - log(c+1)/log(k+1) * (max - min), k = suspicion_confirmations
  // A suspicion starts at `max` and shrinks as independent accusers confirm it.
  double suspicion_mult = 1.25;
  double suspicion_max_mult = 6;
  uint32_t suspicion_confirmations = 2;
  // When a member first hears of a suspicion it did not raise, it re-probes the suspect at its
  // next probe tick with probability min(1, suspicion_verifiers / N). Expected ~this many
  // independent checks within one period: confirmations arrive in ~1 T instead of ~k T.
  double suspicion_verifiers = 6;

  // --- Lifeguard switches (all on by default; off reproduces plain SWIM + suspicion) ---
  bool lifeguard = true;  // master switch: awareness, dynamic suspicion, nacks, buddy system
  // Health score cap S: multiplier (score+1) ranges over [1, S]. Lifeguard §IV-A uses 8.
  uint32_t awareness_max_multiplier = 8;

  // --- Dissemination (SWIM §4.1) ---

  // Each update is retransmitted retransmit_mult * ceil(log10(N+1)) times (retransmit_limit).
  uint32_t retransmit_mult = 4;
  // Dedicated gossip: every gossip_interval, if anything is queued, send to gossip_nodes random
  // live members (and dead ones for gossip_to_the_dead, so partitioned members can refute).
  Duration gossip_interval = std::chrono::milliseconds(200);
  uint32_t gossip_nodes = 3;
  Duration gossip_to_the_dead = std::chrono::seconds(30);
  // Largest sealed datagram ever sent or accepted. 1400 leaves room for IP/UDP/tunnel headers.
  size_t max_datagram_bytes = 1400;
  // Queued user broadcasts beyond this are dropped (oldest first); system updates never are.
  size_t max_user_broadcasts = 256;

  // --- Anti-entropy (push/pull over the stream) ---

  // Full-state exchange on join, then a digest exchange every
  //   push_pull_interval * push_pull_scale(N)   (push_pull_scale = ceil(log2 N - log2 32) + 1 for
  // N > 32, else 1). Digests match in steady state, so the full state only moves when views
  // differ. After a join, extra exchanges run at 1, 3, 7 and 15 s (push_pull_join_first, then
  // doubling gaps) to close bootstrap gaps fast.
  Duration push_pull_interval = std::chrono::seconds(30);
  bool push_pull_join_backoff = true;
  // Delay of the first back-off exchange after join(); the gaps after it double. Trade-off
  // measured with dog-swim-bench (all members joining at once): 250 ms brings N=200 to 1.8 s
  // (from 3.1 s) but N=500 to 13 s (from 7 s), because 500 early full-state exchanges
  // saturate the CPU. Default: 1 s.
  Duration push_pull_join_first = std::chrono::milliseconds(1000);
  size_t max_stream_bytes = 8u << 20;
  size_t max_push_pull_members = 100000;

  // --- Membership table ---

  // Dead/left members stay as tombstones this long so a stale push/pull cannot revive them
  // without a newer incarnation; after that they are forgotten.
  Duration tombstone_ttl = std::chrono::minutes(60);
  // Members known at once (live + tombstones). A new member beyond this evicts the oldest
  // tombstone, or is dropped (Stats::dropped_table_full) if every slot is live. Also sizes the
  // per-channel replay windows (2x) and the graveyard of reaped members (1x).
  size_t max_members = 16384;
  // Dead/left records sent in one full push/pull, most recent first. Live members always go.
  // Without a cap, name churn grows every push/pull until receivers refuse it
  // (max_push_pull_members) and joins fail.
  size_t max_push_pull_tombstones = 256;
    // After leave(), keep gossiping the `left` update this long before reporting leave_done().
  Duration leave_propagate = std::chrono::milliseconds(1000);

  // --- Input caps (peers are untrusted even after authentication) ---
  size_t max_name_bytes = 128;
  size_t max_addr_bytes = 256;
  size_t max_meta_bytes = 512;
  size_t max_user_payload_bytes = 512;
  size_t max_updates_per_datagram = 64;

  // Session id of this run of the process; part of every nonce, of replay checks, and of our
  // MemberInfo (a higher session of the same name is a new member: types.h).
  // REQUIRES: strictly increases across restarts of the same node name. SwimHost sets it from
  // CLOCK_REALTIME in ns (SwimHostOptions::session_from_realtime); the default 1 is for the
  // simulator and hand-driven tests only. Must be nonzero.
  uint64_t session_id = 1;

  static Config lan();    // LAN: T=1 s, probe 200 ms + indirect 300 ms, gossip 200 ms x 3
  static Config wan();    // WAN: T=5 s, probe 3 s + indirect 1.5 s, gossip 500 ms x 4
  static Config local();  // loopback/tests: T=1 s, probe 100 ms + indirect 150 ms, gossip 100 ms

  // Returns an error message if a field is out of range (e.g. probe deadline beyond T).
  std::optional<std::string> validate() const;
};

// --- Formulas (pure) ---

// max(1, log10(n)) * suspicion_mult * T.
Duration suspicion_timeout_min(double suspicion_mult, size_t n, Duration interval);
// Lifeguard dynamic timeout for `confirmations` independent confirmations out of `k` needed.
Duration suspicion_timeout(Duration min, Duration max, uint32_t k, uint32_t confirmations);
// retransmit_mult * ceil(log10(n + 1)).
uint32_t retransmit_limit(uint32_t retransmit_mult, size_t n);
// 1 for n <= 32, else ceil(log2(n) - log2(32)) + 1.
uint32_t push_pull_scale(size_t n);

}  // namespace dog::membership
