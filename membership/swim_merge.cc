// SWIM core, part 3: what updates do to the member table. Precedence (SWIM §4.2):
//   alive(i)   beats alive/suspect(j) if i > j, and dead/left(j) only if i > j;
//   suspect(i) beats alive/suspect(j) if i >= j (equal: a confirmation);
//   dead/left(i) beat alive/suspect(j) if i >= j.
// Sessions come first: a newer run of a name is a new member, an older run's news is ignored.
// Only a member itself raises its own incarnation (refute, set_meta).
#include <algorithm>

#include "membership/swim.h"
#include "membership/swim_detail.h"

namespace dog::membership {

using detail::fnv1a;
using detail::is_live;
using detail::mix;
using detail::session_order;

Update Swim::alive_update_for_self() const {
  const Member& me = members_[0];
  Update u;
  u.kind = UpdateKind::kAlive;
  u.node = self_name_;
  u.incarnation = me.info.incarnation;
  u.session = me.info.session;
  u.addr = me.info.addr;
  u.meta = me.info.meta;
  return u;
}

bool Swim::set_meta(const Meta& meta) {
  if (meta.byte_size() > cfg_.max_meta_bytes) return false;
  Member& me = members_[0];
  digest_ ^= member_hash(me.info);
  me.info.meta = meta;
  if (me.info.incarnation < kMaxIncarnation) ++me.info.incarnation;
  digest_ ^= member_hash(me.info);
  emit(EventKind::kUpdate, me);
  enqueue(alive_update_for_self());
  return true;
}

bool Swim::broadcast_user(std::span<const uint8_t> payload) {
  if (payload.size() > cfg_.max_user_payload_bytes) return false;
  Update u;
  u.kind = UpdateKind::kUser;
  u.node = self_name_;
  u.incarnation = ++user_seq_;
  u.payload.assign(reinterpret_cast<const char*>(payload.data()), payload.size());
  enqueue(u, BroadcastClass::kUser);
  return true;
}

void Swim::refute(uint64_t accused_incarnation, std::optional<MemberState> accused) {
  Member& me = members_[0];
  if (accused && sink_) sink_->on_self_state(*accused, accused_incarnation);
  digest_ ^= member_hash(me.info);
  // accused < kMaxIncarnation (apply_update drops the rest), so this never wraps.
  me.info.incarnation = std::min(std::max(me.info.incarnation, accused_incarnation) + 1, kMaxIncarnation);
  digest_ ^= member_hash(me.info);
  ++stats_.refutations;
  awareness_.apply(1);  // LHA: being suspected suggests we are the slow one
  enqueue(alive_update_for_self());
  if (accused && sink_) sink_->on_self_state(MemberState::kAlive, me.info.incarnation);
}

void Swim::apply_update(const Update& u) {
  if (u.kind != UpdateKind::kUser && u.incarnation >= kMaxIncarnation) {
    ++stats_.bad_incarnations;
    return;
  }
  switch (u.kind) {
    case UpdateKind::kAlive: apply_alive(u); break;
    case UpdateKind::kSuspect: apply_suspect(u); break;
    case UpdateKind::kDead:
    case UpdateKind::kLeft: apply_dead(u); break;
    case UpdateKind::kUser: apply_user(u); break;
  }
}

void Swim::apply_alive(const Update& u) {
  if (u.node == self_name_) {
    const int order = session_order(u.session, cfg_.session_id);
    if (order < 0) {
      ++stats_.stale_session_updates;  // our previous run; our own alive replaces it
    } else if (order > 0) {
      ++stats_.self_session_conflicts;  // a newer run of our name elsewhere: cannot outbid it
    } else if (u.incarnation > incarnation() && !leaving_) {
      refute(u.incarnation, std::nullopt);  // an alive of this run newer than ours: outbid it
    }
    return;
  }
  if (u.addr.empty()) return;
  Member* m = find(u.node);
  if (!m) {
    auto grave = graveyard_.find(u.node);
    if (grave != graveyard_.end()) {
      // A reaped member. Its own packet (fresh by the replay window) proves it is back; a
      // second-hand record must be newer than its death (a replayed push/pull is not).
      const bool newer = session_order(u.session, grave->second.session) > 0 ||
                         (session_order(u.session, grave->second.session) == 0 &&
                          u.incarnation > grave->second.incarnation);
      if (u.node != sender_ && !newer) {
        ++stats_.graveyard_rejections;
        return;
      }
    }
    const uint32_t idx = add_member(u);
    if (idx == kNoSlot) return;
    Member& nm = members_[idx];
    set_state(nm, MemberState::kAlive);
    emit(EventKind::kJoin, nm);
    enqueue(u);
    return;
  }
  const int order = session_order(u.session, m->info.session);
  if (order < 0) {
    ++stats_.stale_session_updates;
    return;
  }
  if (order > 0) {
    // Same name, newer run: a new member. The old run is dead with everything it held.
    ++stats_.restarts_seen;
    const bool was_live = is_live(m->info.state);
    if (was_live) {
      set_state(*m, MemberState::kDead);
      emit(EventKind::kDead, *m);
    }
    m->info.session = u.session;  // not live here: no digest contribution to move
    m->info.incarnation = u.incarnation;
    m->info.addr = u.addr;
    m->info.meta = u.meta;
    set_state(*m, MemberState::kAlive);
    if (!was_live) probe_order_.push_back(static_cast<uint32_t>(m - members_.data()));
    emit(EventKind::kJoin, *m);
    enqueue(u);
    return;
  }
  const bool revive_quiet = m->quiet_dead && u.incarnation == m->info.incarnation;
  if (u.incarnation <= m->info.incarnation && !revive_quiet) return;
  const MemberState prev = m->info.state;
  const bool meta_changed = !(m->info.meta == u.meta) || m->info.addr != u.addr;
  digest_ ^= member_hash(m->info);
  m->info.incarnation = u.incarnation;
  if (u.session != 0) m->info.session = u.session;
  m->info.addr = u.addr;
  m->info.meta = u.meta;
  digest_ ^= member_hash(m->info);
  set_state(*m, MemberState::kAlive);
  if (prev == MemberState::kDead || prev == MemberState::kLeft) {
    const uint32_t idx = static_cast<uint32_t>(m - members_.data());
    probe_order_.push_back(idx);
    emit(EventKind::kJoin, *m);
  } else if (prev == MemberState::kSuspect) {
    emit(EventKind::kAlive, *m);
  } else if (meta_changed) {
    emit(EventKind::kUpdate, *m);
  }
  enqueue(u);
}

void Swim::apply_suspect(const Update& u, bool quiet) {
  if (u.node == self_name_) {
    if (session_order(u.session, cfg_.session_id) != 0)
      ++stats_.stale_session_updates;  // about another run of our name
    else if (!leaving_ && u.incarnation >= incarnation())
      refute(u.incarnation, MemberState::kSuspect);
    return;
  }
  Member* m = find(u.node);
  if (!m || !is_live(m->info.state) || u.incarnation < m->info.incarnation) return;
  if (session_order(u.session, m->info.session) != 0) {
    ++stats_.stale_session_updates;  // an older run, or a newer one we have not seen alive yet
    return;
  }
  const uint32_t idx = static_cast<uint32_t>(m - members_.data());
  const std::string& accuser = u.from.empty() ? u.node : u.from;
  if (m->info.state == MemberState::kSuspect && u.incarnation == m->info.incarnation) {
    if (!quiet && m->quiet) {
      // A peer accuses too: our quiet suspicion is corroborated and becomes a normal one.
      m->quiet = false;
      Update mine = u;
      mine.from = self_name_;
      enqueue(mine);
    }
    if (m->suspicion && m->suspicion->confirm(accuser)) {
      schedule(m->suspicion->deadline(), TimerKind::kSuspicion, idx, m->suspicion_gen);
      enqueue(u);  // re-gossip confirmations so others shrink their timers too
    }
    return;
  }
  digest_ ^= member_hash(m->info);
  m->info.incarnation = u.incarnation;
  digest_ ^= member_hash(m->info);
  set_state(*m, MemberState::kSuspect);
  ++m->suspicion_gen;
  const Duration min = suspicion_timeout_min(cfg_.suspicion_mult, n_live_, cfg_.probe_interval);
  Duration max = min;
  uint32_t k = 0;
  if (cfg_.lifeguard) {
    max = Duration(static_cast<int64_t>(cfg_.suspicion_max_mult * static_cast<double>(min.count())));
    // With fewer than k other members to confirm, waiting for k would always hit max.
    k = n_live_ >= 2 + cfg_.suspicion_confirmations ? cfg_.suspicion_confirmations
                                                    : static_cast<uint32_t>(n_live_ > 2 ? n_live_ - 2 : 0);
  }
  if (quiet) {
    // Nobody is told, so nobody can confirm: waiting for confirmations would always run to max.
    // What protects a slow or deaf member here is not the timeout but heard_from(): the first
    // packet it processes ends every quiet suspicion.
    max = min;
    k = 0;
  }
  m->suspicion = std::make_unique<Suspicion>(accuser, k, clock_.now(), min, max);
  schedule(m->suspicion->deadline(), TimerKind::kSuspicion, idx, m->suspicion_gen);
  const bool local = accuser == self_name_;
  m->quiet = quiet;
  if (quiet && std::find(quiet_.begin(), quiet_.end(), idx) == quiet_.end()) quiet_.push_back(idx);
  emit(EventKind::kSuspect, *m, local);
  if (!quiet) enqueue(u);
  // Lifeguard-style acceleration: a few members re-probe the suspect at their next tick, so
  // independent confirmations of a real failure arrive within about one period.
  if (!local && cfg_.lifeguard && cfg_.suspicion_verifiers > 0 &&
      rng_.unit() * static_cast<double>(n_live_) < cfg_.suspicion_verifiers)
    if (verify_.size() < 64) verify_.push_back(u.node);
}

void Swim::suspect_locally(uint32_t idx, bool quiet) {
  Member& m = members_[idx];
  if (!m.in_use || !is_live(m.info.state)) return;
  ++stats_.suspicions_raised;
  Update u;
  u.kind = UpdateKind::kSuspect;
  u.node = m.info.name;
  u.incarnation = m.info.incarnation;
  u.session = m.info.session;
  u.from = self_name_;
  apply_suspect(u, quiet);
}

void Swim::suspicion_expired(uint32_t idx, uint64_t gen) {
  Member& m = members_[idx];
  if (!m.in_use || m.suspicion_gen != gen || m.info.state != MemberState::kSuspect || !m.suspicion)
    return;
  if (m.suspicion->deadline() > clock_.now()) return;  // a later entry is scheduled
  ++stats_.deaths_declared;
  Update u;
  u.kind = UpdateKind::kDead;
  u.node = m.info.name;
  u.incarnation = m.info.incarnation;
  u.session = m.info.session;
  u.from = self_name_;
  const bool quiet = m.quiet;  // set_state clears it
  set_state(m, MemberState::kDead);
  m.quiet_dead = quiet;
  emit(EventKind::kDead, m, true);
  if (!quiet) enqueue(u);
}

void Swim::apply_dead(const Update& u) {
  const bool left = u.kind == UpdateKind::kLeft;
  if (u.node == self_name_) {
    // A death (or a stale "left") of this run while we are running: refute.
    if (session_order(u.session, cfg_.session_id) != 0)
      ++stats_.stale_session_updates;
    else if (!leaving_ && u.incarnation >= incarnation())
      refute(u.incarnation, left ? MemberState::kLeft : MemberState::kDead);
    return;
  }
  Member* m = find(u.node);
  if (!m) return;
  const int order = session_order(u.session, m->info.session);
  if (order < 0) {
    ++stats_.stale_session_updates;
    return;
  }
  if (order > 0) {
    // A newer run of this name, already gone: whatever we hold (live or not) is over too, and
    // the tombstone now carries the newer session so the older run cannot come back.
    if (is_live(m->info.state)) {
      set_state(*m, left ? MemberState::kLeft : MemberState::kDead);
      emit(left ? EventKind::kLeave : EventKind::kDead, *m);
    }
    m->info.session = u.session;
    m->info.incarnation = u.incarnation;
    enqueue(u);
    return;
  }
  if (!is_live(m->info.state) || u.incarnation < m->info.incarnation) return;
  digest_ ^= member_hash(m->info);
  m->info.incarnation = u.incarnation;
  digest_ ^= member_hash(m->info);
  set_state(*m, left ? MemberState::kLeft : MemberState::kDead);  // removes the live hash
  emit(left ? EventKind::kLeave : EventKind::kDead, *m);
  enqueue(u);
}

void Swim::apply_user(const Update& u) {
  if (u.node == self_name_) return;
  const uint64_t key = mix(fnv1a(u.node) ^ mix(u.incarnation + 0x5bd1e995));
  if (!user_seen_.insert(key).second) return;
  user_seen_order_.push_back(key);
  if (user_seen_order_.size() > 4096) {
    user_seen_.erase(user_seen_order_.front());
    user_seen_order_.pop_front();
  }
  enqueue(u, BroadcastClass::kUser);
  if (sink_)
    sink_->on_user_message(u.node, std::span<const uint8_t>(
                                       reinterpret_cast<const uint8_t*>(u.payload.data()), u.payload.size()));
}

void Swim::merge_state(const PushPull& p) {
  // memberlist mergeState: alive/left as received; suspect and dead become suspicions accused by
  // the sender (a remote "dead" is only a suspicion here, so it can still be refuted). Alive
  // records never revive a dead/left member without a newer incarnation (apply_alive).
  Update u;
  for (const MemberInfo& r : p.members) {
    u = Update{};
    u.node = r.name;
    u.incarnation = r.incarnation;
    u.session = r.session;
    switch (r.state) {
      case MemberState::kAlive:
        u.kind = UpdateKind::kAlive;
        u.addr = r.addr;
        u.meta = r.meta;
        break;
      case MemberState::kLeft:
        u.kind = UpdateKind::kLeft;
        u.from = p.from;
        break;
      case MemberState::kSuspect:
      case MemberState::kDead:
        if (!find(r.name) && r.name != self_name_) continue;  // don't learn members as suspects
        u.kind = UpdateKind::kSuspect;
        u.from = p.from;
        break;
    }
    apply_update(u);
  }
}

}  // namespace dog::membership
