// SWIM core, part 1: construction, timers, probing, gossip and push/pull scheduling. The sealed
// transport path and message handlers are in swim_net.cc; state transitions (what an update
// does to the member table) in swim_merge.cc; the table itself in swim_table.cc.
#include "membership/swim.h"

#include <algorithm>
#include <cstring>

namespace dog::membership {


const char* to_string(EventKind k) {
  switch (k) {
    case EventKind::kJoin: return "join";
    case EventKind::kUpdate: return "update";
    case EventKind::kSuspect: return "suspect";
    case EventKind::kAlive: return "alive";
    case EventKind::kDead: return "dead";
    case EventKind::kLeave: return "leave";
  }
  return "?";
}

Swim::Swim(const Config& cfg, Identity self, Keyring& keyring, Clock& clock, Timer& timer,
           Transport& transport, uint64_t seed, EventSink* sink)
    : cfg_(cfg),
      self_name_(self.name),
      keyring_(keyring),
      clock_(clock),
      timer_(timer),
      transport_(transport),
      sink_(sink),
      rng_(seed),
      awareness_(cfg.lifeguard ? cfg.awareness_max_multiplier : 1),
      queue_(cfg.max_user_broadcasts),
      replay_dgram_(2 * cfg.max_members),
      replay_stream_(2 * cfg.max_members) {
  limits_.traversal_limit_words = cfg.max_datagram_bytes * 8;
  limits_.max_name_bytes = cfg.max_name_bytes;
  limits_.max_addr_bytes = cfg.max_addr_bytes;
  limits_.max_meta_bytes = cfg.max_meta_bytes;
  limits_.max_payload_bytes = cfg.max_user_payload_bytes;
  limits_.max_updates = cfg.max_updates_per_datagram;
  stream_limits_ = limits_;
  stream_limits_.traversal_limit_words = cfg.max_stream_bytes;  // words >= packed bytes / 8 * 8
  stream_limits_.max_members = cfg.max_push_pull_members;

  Member me;
  me.in_use = true;
  me.info.name = std::move(self.name);
  me.info.addr = std::move(self.addr);
  me.info.meta = std::move(self.meta);
  me.info.incarnation = 1;
  me.info.session = cfg.session_id;
  me.info.state = MemberState::kAlive;
  members_.push_back(std::move(me));
  index_.emplace(self_name_, 0);
  digest_ = member_hash(members_[0].info);
  members_[0].ring_hash = ring_hash_of(self_name_);
  ring_.emplace(members_[0].ring_hash, 0);
}

Swim::~Swim() = default;

uint64_t Swim::incarnation() const { return members_[0].info.incarnation; }

// ---------------------------------------------------------------------------------------------
// Timers

void Swim::schedule(TimePoint at, TimerKind kind, uint32_t idx, uint64_t gen) {
  // Superseded entries (refuted suspicions, finished probes and relays) stay queued until due;
  // under churn they are dropped here so the queue stays O(members).
  if (deadlines_.size() > 4 * members_.size() + 4 * kRelaySlots + 64) compact_deadlines();
  deadlines_.push(Deadline{at, kind, idx, gen});
  if (at < armed_) {
    armed_ = at;
    timer_.wake_at(at);
  }
}

bool Swim::deadline_live(const Deadline& d) const {
  switch (d.kind) {
    case TimerKind::kProbeTimeout:
    case TimerKind::kIndirect:
    case TimerKind::kProbeDeadline: return probe_.active && probe_.gen == d.gen;
    case TimerKind::kSuspicion: {
      if (d.idx >= members_.size()) return false;
      const Member& m = members_[d.idx];
      return m.in_use && m.suspicion && m.suspicion_gen == d.gen &&
             m.suspicion->deadline() == d.at;
    }
    case TimerKind::kRelay: return relays_[d.idx].active && relays_[d.idx].seq == d.gen;
    default: return true;  // periodic ticks: one of each is pending
  }
}

void Swim::compact_deadlines() {
  std::vector<Deadline> keep;
  keep.reserve(deadlines_.size());
  while (!deadlines_.empty()) {
    if (deadline_live(deadlines_.top())) keep.push_back(deadlines_.top());
    deadlines_.pop();
  }
  for (const Deadline& d : keep) deadlines_.push(d);
}

void Swim::arm() {
  if (deadlines_.empty()) {
    armed_ = TimePoint::max();
    return;
  }
  TimePoint next = deadlines_.top().at;
  if (next != armed_) {
    armed_ = next;
    timer_.wake_at(next);
  }
}

void Swim::on_timer() {
  const TimePoint now = clock_.now();
  while (!deadlines_.empty() && deadlines_.top().at <= now) {
    Deadline d = deadlines_.top();
    deadlines_.pop();
    dispatch(d);
  }
  armed_ = TimePoint::max();
  arm();
}

void Swim::dispatch(const Deadline& d) {
  switch (d.kind) {
    case TimerKind::kProbe: probe_tick(); break;
    case TimerKind::kProbeTimeout: probe_timeout(d.gen); break;
    case TimerKind::kIndirect: send_indirect(d.gen); break;
    case TimerKind::kProbeDeadline: probe_deadline(d.gen); break;
    case TimerKind::kGossip: gossip_tick(); break;
    case TimerKind::kPushPull: push_pull_tick(d.idx); break;
    case TimerKind::kSuspicion: suspicion_expired(d.idx, d.gen); break;
    case TimerKind::kRelay: relay_timeout(d.idx, d.gen); break;
    case TimerKind::kLeave: leave_done_ = true; break;
  }
}

void Swim::start() {
  if (started_) return;
  started_ = true;
  const TimePoint now = clock_.now();
  // Random phases so that members started together do not probe and gossip in lock-step.
  schedule(now + Duration(rng_.uniform(cfg_.probe_interval.count())), TimerKind::kProbe);
  schedule(now + Duration(rng_.uniform(cfg_.gossip_interval.count())), TimerKind::kGossip);
  schedule(now + cfg_.push_pull_interval / 2 +
               Duration(rng_.uniform(cfg_.push_pull_interval.count())),
           TimerKind::kPushPull, 0);
}

void Swim::join(std::span<const std::string> seed_addrs) {
  for (const auto& addr : seed_addrs)
    if (addr != members_[0].info.addr) send_push_pull(addr, SyncKind::kFull, true, true);
  if (cfg_.push_pull_join_backoff) {
    join_backoff_step_ = 0;
    join_seeds_.clear();
    for (const auto& addr : seed_addrs)
      if (addr != members_[0].info.addr) join_seeds_.push_back(addr);
    schedule(clock_.now() + cfg_.push_pull_join_first, TimerKind::kPushPull, 1);
  }
}

void Swim::leave() {
  if (leaving_) return;
  leaving_ = true;
  Member& me = members_[0];
  Update u;
  u.kind = UpdateKind::kLeft;
  u.node = self_name_;
  u.incarnation = me.info.incarnation;
  u.session = me.info.session;
  u.from = self_name_;
  set_state(me, MemberState::kLeft);
  emit(EventKind::kLeave, me);
  enqueue(u);
  schedule(clock_.now() + cfg_.leave_propagate, TimerKind::kLeave);
}

// ---------------------------------------------------------------------------------------------
// Probing (SWIM §3.1, §4.3; Lifeguard LHA-Probe, buddy system)

void Swim::reshuffle() {
  const TimePoint now = clock_.now();
  probe_order_.clear();
  for (uint32_t i = 1; i < members_.size(); ++i) {
    Member& m = members_[i];
    if (!m.in_use) continue;
    if (m.info.state == MemberState::kDead || m.info.state == MemberState::kLeft) {
      if (now - m.state_change > cfg_.tombstone_ttl) reap(i);  // forget old tombstones
      continue;
    }
    probe_order_.push_back(i);
  }
  for (size_t i = probe_order_.size(); i > 1; --i)
    std::swap(probe_order_[i - 1], probe_order_[rng_.uniform(i)]);
  probe_pos_ = 0;
}

std::optional<uint32_t> Swim::ring_successor() const {
  auto it = ring_.upper_bound({members_[0].ring_hash, 0});
  if (it == ring_.end()) it = ring_.begin();
  if (it == ring_.end() || it->second == 0) return std::nullopt;
  return it->second;
}

std::optional<uint32_t> Swim::next_probe_target() {
  while (!verify_.empty()) {
    std::string name = std::move(verify_.front());
    verify_.pop_front();
    auto it = index_.find(name);
    if (it != index_.end() && members_[it->second].info.state == MemberState::kSuspect)
      return it->second;
  }
  // Every successor_probe_every-th probe goes to our successor on the ring of live members. When
  // views agree each member has exactly one such prober, so a crash is probed within that many
  // periods instead of after ~Exp(1) periods of independent round-robin choices.
  if (cfg_.successor_probe_every > 0 && ++probe_count_ % cfg_.successor_probe_every == 0) {
    if (auto succ = ring_successor()) return succ;
  }
  for (int pass = 0; pass < 2; ++pass) {
    while (probe_pos_ < probe_order_.size()) {
      uint32_t idx = probe_order_[probe_pos_++];
      const Member& m = members_[idx];
      if (m.in_use && (m.info.state == MemberState::kAlive || m.info.state == MemberState::kSuspect))
        return idx;
    }
    reshuffle();
  }
  return std::nullopt;
}

void Swim::probe_tick() {
  const TimePoint now = clock_.now();
  schedule(now + awareness_.scale(cfg_.probe_interval), TimerKind::kProbe);
  if (leaving_) return;
  auto target = next_probe_target();
  if (!target) return;
  Member& m = members_[*target];
  probe_ = Probe{};
  probe_.active = true;
  probe_.seq = ++seq_;
  probe_.target = *target;
  probe_.gen = ++probe_gen_;
  probe_.start = now;
  ++stats_.probes;

  out_msg_.clear();
  out_msg_.kind = MsgKind::kPing;
  out_msg_.seq = probe_.seq;
  out_msg_.target = m.info.name;
  Update buddy;
  const bool suspect = m.info.state == MemberState::kSuspect && cfg_.lifeguard;
  if (suspect) {  // buddy system: tell the suspect directly so it can refute at once
    buddy.kind = UpdateKind::kSuspect;
    buddy.node = m.info.name;
    buddy.incarnation = m.info.incarnation;
    buddy.session = m.info.session;
    buddy.from = self_name_;
  }
  send_datagram(m.info.addr, out_msg_, suspect ? &buddy : nullptr);
  schedule(now + awareness_.scale(cfg_.probe_timeout), TimerKind::kProbeTimeout, 0, probe_.gen);
  schedule(now + awareness_.scale(cfg_.probe_timeout + cfg_.indirect_timeout),
           TimerKind::kProbeDeadline, 0, probe_.gen);
}

void Swim::probe_timeout(uint64_t gen) {
  if (!probe_.active || probe_.gen != gen || probe_.acked) return;
  if (!cfg_.probe_retry) {
    send_indirect(gen);
    return;
  }
  // A second direct ping with the same seq (the datagram analogue of memberlist's TCP fallback
  // ping). Only if it also goes unanswered for retry_timeout do we involve k relays, so under
  // independent loss p the 4k-message indirect exchange runs for ~(2p)^2 of probes, not ~2p.
  const Member& target = members_[probe_.target];
  out_msg_.clear();
  out_msg_.kind = MsgKind::kPing;
  out_msg_.seq = probe_.seq;
  out_msg_.target = target.info.name;
  send_datagram(target.info.addr, out_msg_, nullptr);
  // Relative to the probe start, not to now: if this timer ran late (a slow member), the
  // indirect phase still precedes the deadline instead of being skipped.
  schedule(probe_.start + awareness_.scale(cfg_.probe_timeout + cfg_.retry_timeout), TimerKind::kIndirect, 0, gen);
}

void Swim::send_indirect(uint64_t gen) {
  if (!probe_.active || probe_.gen != gen || probe_.acked) return;
  const Member& target = members_[probe_.target];
  uint32_t helpers[16];
  const size_t k = random_members(std::min<size_t>(cfg_.indirect_checks, 16), probe_.target, false, helpers);
  for (size_t i = 0; i < k; ++i) {
    out_msg_.clear();
    out_msg_.kind = MsgKind::kPingReq;
    out_msg_.seq = probe_.seq;
    out_msg_.target = target.info.name;
    out_msg_.target_addr = target.info.addr;
    out_msg_.want_nack = cfg_.lifeguard;
    send_datagram(members_[helpers[i]].info.addr, out_msg_, nullptr);
    ++stats_.indirect_probes;
  }
  probe_.nacks_expected = cfg_.lifeguard ? static_cast<uint32_t>(k) : 0;
}

void Swim::probe_deadline(uint64_t gen) {
  if (!probe_.active || probe_.gen != gen) return;
  probe_.active = false;
  if (probe_.acked) {
    inconclusive_run_ = 0;
    return;
  }
  // LHA-Probe: missing nacks mean *we* are likely the slow one.
  if (probe_.nacks_expected > 0)
    awareness_.apply(static_cast<int>(probe_.nacks_expected - std::min(probe_.nacks_expected, probe_.nacks_received)));
  else
    awareness_.apply(1);
  if (probe_.nacks_received > 0) inconclusive_run_ = 0;
  if (cfg_.lifeguard && probe_.nacks_expected > 0 && probe_.nacks_received == 0 &&
      inconclusive_run_ < cfg_.inconclusive_probe_limit) {
    // Neither an ack nor a single nack from k relays: the relays may be unable to reach *us*
    // (we are slow, overloaded or cut off), so the probe says little about the target. Only
    // the health score moves -- for inconclusive_probe_limit probes in a row. Past that, the
    // relays are as likely dead as we are deaf (3 members, 2 crashed), and the target is
    // suspected as memberlist does -- quietly: the suspicion and any death it leads to stay in
    // our own view and are never gossiped, so a deaf member cannot kill healthy ones elsewhere
    // (a buddy ping still tells the target, which refutes). Our raised health score has already
    // slowed our probing and lengthened our timeouts.
    ++inconclusive_run_;
    ++stats_.probes_inconclusive;
    return;
  }
  const bool silent = cfg_.lifeguard && probe_.nacks_expected > 0 && probe_.nacks_received == 0;
  ++stats_.probe_failures;
  if (silent) ++stats_.quiet_suspicions;
  suspect_locally(probe_.target, silent);
}

void Swim::relay_timeout(uint32_t slot, uint64_t seq) {
  Relay& r = relays_[slot];
  if (!r.active || r.seq != seq) return;
  r.active = false;
  if (!r.want_nack) return;
  out_msg_.clear();
  out_msg_.kind = MsgKind::kNack;
  out_msg_.seq = r.origin_seq;
  send_datagram(r.origin_addr, out_msg_, nullptr);
}

size_t Swim::random_members(size_t k, uint32_t exclude, bool include_recent_dead, uint32_t* out) {
  const TimePoint now = clock_.now();
  auto eligible = [&](uint32_t i) {
    const Member& m = members_[i];
    if (!m.in_use || i == 0 || i == exclude) return false;
    if (m.info.state == MemberState::kAlive || m.info.state == MemberState::kSuspect) return true;
    return include_recent_dead && m.info.state == MemberState::kDead &&
           now - m.state_change < cfg_.gossip_to_the_dead;
  };
  auto taken = [&](size_t n, uint32_t i) { return std::find(out, out + n, i) != out + n; };
  size_t n = 0;
  const size_t slots = members_.size();
  if (slots <= 1) return 0;
  // Rejection sampling: O(k) expected when most slots are live, never O(N) per message...
  for (size_t attempt = 0; attempt < 8 * k + 8 && n < k; ++attempt) {
    uint32_t i = static_cast<uint32_t>(1 + rng_.uniform(slots - 1));
    if (eligible(i) && !taken(n, i)) out[n++] = i;
  }
  // ...except in tiny or mostly-dead tables, where a scan is cheap anyway.
  if (n < k && slots <= 64) {
    uint32_t start = static_cast<uint32_t>(rng_.uniform(slots));
    for (size_t j = 0; j < slots && n < k; ++j) {
      uint32_t i = static_cast<uint32_t>((start + j) % slots);
      if (eligible(i) && !taken(n, i)) out[n++] = i;
    }
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Gossip and anti-entropy

void Swim::gossip_tick() {
  schedule(clock_.now() + cfg_.gossip_interval, TimerKind::kGossip);
  if (queue_.empty()) return;  // idle clusters send only probes and push/pull digests
  uint32_t targets[16];
  const size_t n = random_members(std::min<size_t>(cfg_.gossip_nodes, 16), 0, true, targets);
  for (size_t i = 0; i < n && !queue_.empty(); ++i) {
    out_msg_.clear();
    out_msg_.kind = MsgKind::kGossip;
    send_datagram(members_[targets[i]].info.addr, out_msg_, nullptr);
  }
}

void Swim::push_pull_tick(uint32_t chain) {
  const TimePoint now = clock_.now();
  if (chain == 0) {
    // Periodic chain: interval scaled with N, jittered +-25 % so members do not synchronise.
    const Duration base = cfg_.push_pull_interval * push_pull_scale(n_live_);
    schedule(now + base * 3 / 4 + Duration(rng_.uniform(base.count() / 2 + 1)), TimerKind::kPushPull, 0);
  } else if (++join_backoff_step_ < 4 || (n_live_ == 1 && !join_seeds_.empty())) {
    // Join back-off chain: push_pull_join_first after join(), then gaps of 2x, 4x and 8x it
    // (1, 3, 7 and 15 s by default). While no seed has answered (we know nobody), it goes on
    // at 8x gaps, to the seeds, until one does (issue 11: "retried with back-off until one
    // answers"); without that a joiner whose first exchanges were lost stayed alone forever.
    schedule(now + cfg_.push_pull_join_first * (1 << std::min(join_backoff_step_, 3)), TimerKind::kPushPull, 1);
  }
  if (leaving_) return;
  // Any member except left ones qualifies, dead tombstones included (Serf's "reconnect"): a
  // member declared dead during a partition learns so from the full-state reply, refutes, and
  // both sides merge again once the partition heals.
  uint32_t peer = 0;
  for (int attempt = 0; attempt < 16 && peer == 0 && members_.size() > 1; ++attempt) {
    const uint32_t i = static_cast<uint32_t>(1 + rng_.uniform(members_.size() - 1));
    if (members_[i].in_use && members_[i].info.state != MemberState::kLeft) peer = i;
  }
  // The first exchange after a join goes back to a seed: everyone who joined with us reached
  // it, so by now it holds the whole crowd, while a random peer may know as little as we do.
  if (chain == 1 && n_live_ == 1 && !join_seeds_.empty()) {
    ++stats_.push_pulls;  // still alone: a fresh full-state join to every seed
    for (const std::string& seed : join_seeds_) send_push_pull(seed, SyncKind::kFull, true, true);
    return;
  }
  if (chain == 1 && join_backoff_step_ == 1 && !join_seeds_.empty()) {
    ++stats_.push_pulls;
    send_push_pull(join_seeds_[rng_.uniform(join_seeds_.size())], SyncKind::kDigest, false, true);
    return;
  }
  if (peer != 0) {
    ++stats_.push_pulls;
    send_push_pull(members_[peer].info.addr, SyncKind::kDigest, false, true);
  }
}

}  // namespace dog::membership
