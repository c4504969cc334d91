// The SWIM + Lifeguard membership core: a single-threaded, sans-IO state machine.
//
// Inputs: on_datagram(), on_stream(), on_timer(), and the API calls below. Outputs: sealed
// bytes through Transport, wake-up requests through Timer, events through EventSink. The same
// code runs in production (node/ wires Asio sockets and a steady clock) and in the simulator
// (membership/sim). It never includes Asio, never reads an OS clock, and draws every random
// choice from a seeded Rng.
//
// Protocol summary (details and formulas in docs/membership.md and config.h):
//  * Every period T (scaled by local health) probe the next member of a shuffled round-robin
//    order: ping; after probe_timeout ping again; if that fails too, ask k members to ping-req
//    it; at the deadline suspect it (unless not even a nack came back: then we are the problem).
//  * Suspicions carry incarnation numbers; the suspect refutes with a higher one. Lifeguard
//    timeouts shrink with independent confirmations; relays send nacks; a ping to a suspect
//    carries the suspicion (buddy system); local health scales our own timing.
//  * Updates piggyback on every datagram (BroadcastQueue) and on dedicated gossip.
//  * Anti-entropy push/pull over the stream: full state on join, digests afterwards.
//  * Every datagram and stream frame is sealed with the Keyring; bad input is counted and dropped.
//
// Thread-safety: none. All calls must come from the loop that owns the instance. The Clock,
// Timer, Transport, Keyring and EventSink passed in must outlive it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "membership/awareness.h"
#include "membership/broadcast_queue.h"
#include "membership/clock.h"
#include "membership/config.h"
#include "membership/events.h"
#include "membership/keyring.h"
#include "membership/replay_window.h"
#include "membership/rng.h"
#include "membership/stats.h"
#include "membership/suspicion.h"
#include "membership/transport.h"
#include "membership/types.h"
#include "membership/wire.h"

namespace dog::membership {

// Position of a member name on the successor-probing ring (deterministic, same on every node).
uint64_t ring_hash_of(std::string_view name);

struct Identity {
  std::string name;  // unique, stable cluster-wide; <= Config::max_name_bytes
  std::string addr;  // where peers send datagrams and stream frames
  Meta meta;
};

class Swim {
 public:
  // REQUIRES: cfg.validate() == nullopt, identity.meta within cfg.max_meta_bytes.
  // `sink` may be null. Nothing is sent until start().
  Swim(const Config& cfg, Identity self, Keyring& keyring, Clock& clock, Timer& timer,
       Transport& transport, uint64_t seed, EventSink* sink);
  ~Swim();
  Swim(const Swim&) = delete;
  Swim& operator=(const Swim&) = delete;

  // Starts probing, gossip and periodic push/pull (alone until join() or a peer contacts us).
  void start();
  // Sends a full-state push/pull to each seed address. Joining completes asynchronously as the
  // replies arrive; num_live() > 1 tells that at least one did.
  void join(std::span<const std::string> seed_addrs);
  // Graceful leave: gossips `left` for Config::leave_propagate, stops probing; leave_done()
  // then turns true and the host may stop calling in.
  void leave();
  bool leave_done() const { return leave_done_; }

  // Inbound bytes from the transport. Never throws; bad input is dropped and counted in stats().
  void on_datagram(std::string_view from_addr, std::span<const uint8_t> bytes);
  void on_stream(std::string_view from_addr, std::span<const uint8_t> bytes);
  // Runs every internal deadline that is due at clock.now().
  void on_timer();

  // Replaces our metadata (bumps our incarnation and gossips it). False if over max_meta_bytes.
  bool set_meta(const Meta& meta);
  // Queues a user payload for best-effort dissemination behind system updates. False if over
  // max_user_payload_bytes.
  bool broadcast_user(std::span<const uint8_t> payload);

  // --- Queries ---
  const std::string& name() const { return self_name_; }
  size_t num_live() const { return n_live_; }  // alive + suspect, including ourselves
  std::optional<MemberInfo> member(std::string_view name) const;
  std::vector<MemberInfo> members() const;  // every known member incl. tombstones and ourselves
  uint64_t incarnation() const;
  uint64_t view_epoch() const { return view_epoch_; }
  uint64_t digest() const { return digest_; }
  int health_score() const { return awareness_.score(); }
  const Stats& stats() const { return stats_; }
  const Config& config() const { return cfg_; }
  size_t queued_broadcasts() const { return queue_.size(); }
  // Bounded-state probes for tests: member slots in use (live + tombstones), reaped members
  // remembered, senders in the replay windows, pending timer entries.
  size_t table_size() const { return index_.size(); }
  size_t graveyard_size() const { return graveyard_.size(); }
  size_t replay_senders() const { return replay_dgram_.size() + replay_stream_.size(); }
  size_t pending_deadlines() const { return deadlines_.size(); }

  // Test/simulator seam: installs members as alive without any traffic or broadcasts, as if a
  // push/pull had already happened (used to start large simulated clusters converged).
  void TEST_install(const std::vector<MemberInfo>& members);

 private:
  enum class TimerKind : uint8_t {
    kProbe, kProbeTimeout, kIndirect, kProbeDeadline, kGossip, kPushPull, kSuspicion, kRelay, kLeave
  };
  struct Deadline {
    TimePoint at;
    TimerKind kind;
    uint32_t idx;
    uint64_t gen;
    bool operator>(const Deadline& o) const { return at > o.at; }
  };
  struct Member {
    MemberInfo info;
    bool in_use = false;
    TimePoint state_change{};
    std::unique_ptr<Suspicion> suspicion;
    uint64_t suspicion_gen = 0;
    bool quiet = false;       // the current suspicion is local only (apply_suspect)
    bool quiet_dead = false;  // declared dead by a quiet suspicion: nobody else was told, so an
                              // alive of the same incarnation brings it back
    uint64_t ring_hash = 0;  // position on the successor-probing ring
  };
  struct Probe {
    bool active = false;
    bool acked = false;
    uint32_t seq = 0;
    uint32_t target = 0;
    uint64_t gen = 0;
    TimePoint start{};
    uint32_t nacks_expected = 0;
    uint32_t nacks_received = 0;
  };
  struct Relay {
    bool active = false;
    bool want_nack = false;
    uint32_t seq = 0;
    uint32_t origin_seq = 0;
    std::string origin_addr;
  };
  static constexpr size_t kRelaySlots = 64;

  // swim.cc: timers, probing, gossip, push/pull scheduling; swim_net.cc: sealed transport path
  // and message handlers.
  void schedule(TimePoint at, TimerKind kind, uint32_t idx = 0, uint64_t gen = 0);
  bool deadline_live(const Deadline& d) const;  // false: superseded, dispatch would do nothing
  void compact_deadlines();
  void arm();
  void dispatch(const Deadline& d);
  void probe_tick();
  void probe_timeout(uint64_t gen);
  void send_indirect(uint64_t gen);
  void probe_deadline(uint64_t gen);
  void gossip_tick();
  void push_pull_tick(uint32_t chain);
  void relay_timeout(uint32_t slot, uint64_t seq);
  std::optional<uint32_t> next_probe_target();
  std::optional<uint32_t> ring_successor() const;
  void reshuffle();
  size_t random_members(size_t k, uint32_t exclude, bool include_recent_dead, uint32_t* out);
  void send_datagram(const std::string& to_addr, Datagram& d, const Update* buddy);
  void send_push_pull(const std::string& to_addr, SyncKind kind, bool join, bool want_reply);
  Keyring::Nonce next_nonce();
  void handle_datagram(std::string_view from_addr, Datagram& d);
  void handle_push_pull(PushPull& p);

  // swim_merge.cc: state transitions; swim_table.cc: slots, index, caps, graveyard, events.
  void apply_update(const Update& u);
  void apply_alive(const Update& u);
  // quiet: a suspicion raised by a silent probe run (no ack, no nack: we may be the deaf one);
  // it and the death it may lead to stay local, never gossiped, until a peer accuses too.
  void apply_suspect(const Update& u, bool quiet = false);
  void apply_dead(const Update& u);
  void apply_user(const Update& u);
  void suspect_locally(uint32_t idx, bool quiet = false);
  // We heard an authenticated packet from `from`: we are not deaf. Quiet suspicions end (alive
  // again) and a quiet death of `from` itself is undone (it joins again).
  void heard_from(std::string_view from);
  void suspicion_expired(uint32_t idx, uint64_t gen);
  // Outbids `accused_incarnation`; `accused` (if set) is reported through on_self_state.
  void refute(uint64_t accused_incarnation, std::optional<MemberState> accused);
  void merge_state(const PushPull& p);
  // Returns kNoSlot if the table is full of live members.
  uint32_t add_member(const Update& u);
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  void reap(uint32_t idx);  // forget a tombstone; remember it in the graveyard
  void set_state(Member& m, MemberState s);
  void emit(EventKind kind, const Member& m, bool local_origin = false);
  void enqueue(const Update& u, BroadcastClass cls = BroadcastClass::kSystem);
  Update alive_update_for_self() const;
  uint64_t member_hash(const MemberInfo& m) const;
  Member* find(std::string_view name);
  const Member* find(std::string_view name) const;

  Config cfg_;
  WireLimits limits_;
  WireLimits stream_limits_;
  std::string self_name_;
  Keyring& keyring_;
  Clock& clock_;
  Timer& timer_;
  Transport& transport_;
  EventSink* sink_;
  Rng rng_;
  Awareness awareness_;
  BroadcastQueue queue_;
  ReplayWindow replay_dgram_;   // one window per channel: a sender's counter spans both
  ReplayWindow replay_stream_;
  // Reaped members: name -> (session, incarnation) at death, FIFO-capped at max_members. A
  // second-hand alive record (about someone other than the packet's sender) must be newer
  // than this to bring the name back, so a replayed old push/pull cannot resurrect it.
  struct Grave {
    uint64_t session = 0;
    uint64_t incarnation = 0;
  };
  std::unordered_map<std::string, Grave> graveyard_;
  std::deque<std::string> graveyard_order_;
  std::string_view sender_;  // name of the packet being handled (valid during on_datagram/on_stream)
  Stats stats_;

  std::vector<Member> members_;  // slot 0 is ourselves
  std::unordered_map<std::string, uint32_t> index_;
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> probe_order_;
  size_t probe_pos_ = 0;
  std::deque<std::string> verify_;
  std::set<std::pair<uint64_t, uint32_t>> ring_;  // live members by (ring_hash, slot)
  uint64_t probe_count_ = 0;
  uint32_t inconclusive_run_ = 0;  // consecutive probes with neither ack nor nack
  std::vector<uint32_t> quiet_;     // slots with a quiet suspicion or a quiet death
  size_t n_live_ = 1;
  uint64_t digest_ = 0;
  uint64_t view_epoch_ = 0;

  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<Deadline>> deadlines_;
  TimePoint armed_ = TimePoint::max();
  Probe probe_;
  uint64_t probe_gen_ = 0;
  uint32_t seq_ = 0;
  Relay relays_[kRelaySlots];
  uint64_t nonce_counter_ = 0;
  uint64_t user_seq_ = 0;
  std::unordered_set<uint64_t> user_seen_;
  std::deque<uint64_t> user_seen_order_;
  bool started_ = false;
  bool leaving_ = false;
  bool leave_done_ = false;
  int join_backoff_step_ = -1;
  std::vector<std::string> join_seeds_;  // the first back-off exchange goes back to a seed

  // Scratch buffers reused for every packet (no per-packet heap churn in steady state).
  Datagram in_msg_;
  Datagram out_msg_;
  PushPull in_pp_;
  std::vector<uint8_t> plain_;
  std::vector<uint8_t> sealed_;
  std::vector<uint8_t> opened_;
};

}  // namespace dog::membership
