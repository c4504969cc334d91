// SWIM core, part 4: the member table. Slots and the name index, the live ring and digest
// bookkeeping (set_state), events, the caps (max_members, graveyard of reaped members), quiet
// suspicions ended by hearing from anyone, and the test seam that installs members.
#include <algorithm>

#include "membership/swim.h"
#include "membership/swim_detail.h"

namespace dog::membership {

using detail::fnv1a;
using detail::is_live;
using detail::mix;

uint64_t ring_hash_of(std::string_view name) { return mix(fnv1a(name) ^ 0x72696e67ULL); }

uint64_t Swim::member_hash(const MemberInfo& m) const {
  // Digest contribution of a live member: order-independent (XOR-combined) hash of name and
  // incarnation. Suspect and alive hash alike; dead/left members contribute nothing.
  if (!is_live(m.state)) return 0;
  return mix(fnv1a(m.name) ^ mix(m.incarnation) ^ mix(m.session + 0x73657373ULL));
}

Swim::Member* Swim::find(std::string_view name) {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &members_[it->second];
}

const Swim::Member* Swim::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &members_[it->second];
}

std::optional<MemberInfo> Swim::member(std::string_view name) const {
  const Member* m = find(name);
  if (!m) return std::nullopt;
  return m->info;
}

std::vector<MemberInfo> Swim::members() const {
  std::vector<MemberInfo> out;
  for (const Member& m : members_)
    if (m.in_use) out.push_back(m.info);
  return out;
}

void Swim::emit(EventKind kind, const Member& m, bool local_origin) {
  ++view_epoch_;
  if (sink_) sink_->on_member_event(Event{kind, &m.info, view_epoch_, local_origin});
}

void Swim::enqueue(const Update& u, BroadcastClass cls) { queue_.push(u, cls); }

void Swim::set_state(Member& m, MemberState s) {
  const bool was_live = is_live(m.info.state);
  digest_ ^= member_hash(m.info);
  m.info.state = s;
  digest_ ^= member_hash(m.info);
  if (was_live && !is_live(s)) {
    --n_live_;
    ring_.erase({m.ring_hash, static_cast<uint32_t>(&m - members_.data())});
  }
  if (!was_live && is_live(s)) {
    ++n_live_;
    ring_.emplace(m.ring_hash, static_cast<uint32_t>(&m - members_.data()));
  }
  m.state_change = clock_.now();
  if (s != MemberState::kSuspect) {
    m.suspicion.reset();
    ++m.suspicion_gen;
    m.quiet = false;
  }
  m.quiet_dead = false;
}

void Swim::reap(uint32_t idx) {
  Member& m = members_[idx];
  // Remembered (FIFO-capped) so a replayed record of this member cannot bring it back.
  auto [it, fresh] = graveyard_.insert_or_assign(m.info.name, Grave{m.info.session, m.info.incarnation});
  if (fresh) {
    graveyard_order_.push_back(m.info.name);
    while (graveyard_order_.size() > cfg_.max_members) {
      graveyard_.erase(graveyard_order_.front());
      graveyard_order_.pop_front();
    }
  }
  index_.erase(m.info.name);
  m = Member{};
  free_slots_.push_back(idx);
}

uint32_t Swim::add_member(const Update& u) {
  if (index_.size() >= cfg_.max_members) {
    // Full: make room by forgetting the oldest tombstone, if there is one.
    uint32_t oldest = kNoSlot;
    for (uint32_t i = 1; i < members_.size(); ++i) {
      const Member& m = members_[i];
      if (m.in_use && !is_live(m.info.state) &&
          (oldest == kNoSlot || m.state_change < members_[oldest].state_change))
        oldest = i;
    }
    if (oldest == kNoSlot) {
      ++stats_.dropped_table_full;
      return kNoSlot;
    }
    reap(oldest);
  }
  uint32_t idx;
  if (!free_slots_.empty()) {
    idx = free_slots_.back();
    free_slots_.pop_back();
  } else {
    idx = static_cast<uint32_t>(members_.size());
    members_.emplace_back();
  }
  Member& m = members_[idx];
  m.in_use = true;
  m.info.name = u.node;
  m.info.addr = u.addr;
  m.info.meta = u.meta;
  m.info.incarnation = u.incarnation;
  m.info.session = u.session;
  m.info.state = MemberState::kDead;  // set_state below counts the transition to alive
  m.ring_hash = ring_hash_of(u.node);
  m.state_change = clock_.now();
  index_.emplace(u.node, idx);
  // SWIM §4.3: new members go to a random position in the rest of the current round.
  probe_order_.push_back(idx);
  const size_t remaining = probe_order_.size() - probe_pos_;
  std::swap(probe_order_.back(), probe_order_[probe_pos_ + rng_.uniform(remaining)]);
  return idx;
}

void Swim::heard_from(std::string_view from) {
  inconclusive_run_ = 0;
  if (quiet_.empty()) return;
  std::vector<uint32_t> slots;
  slots.swap(quiet_);
  for (uint32_t idx : slots) {
    Member& m = members_[idx];
    if (!m.in_use) continue;
    if (m.quiet && m.info.state == MemberState::kSuspect) {
      set_state(m, MemberState::kAlive);  // never gossiped: nothing to refute
      emit(EventKind::kAlive, m);
    } else if (m.quiet_dead && m.info.state == MemberState::kDead) {
      if (m.info.name != from) {
        quiet_.push_back(idx);
        continue;
      }
      set_state(m, MemberState::kAlive);
      probe_order_.push_back(idx);
      emit(EventKind::kJoin, m);
    }
  }
}

void Swim::TEST_install(const std::vector<MemberInfo>& members) {
  Update u;
  for (const MemberInfo& r : members) {
    if (r.name == self_name_ || find(r.name)) continue;
    u.kind = UpdateKind::kAlive;
    u.node = r.name;
    u.addr = r.addr;
    u.incarnation = r.incarnation;
    u.session = r.session;
    u.meta = r.meta;
    const uint32_t idx = add_member(u);
    if (idx == kNoSlot) return;
    set_state(members_[idx], MemberState::kAlive);
    emit(EventKind::kJoin, members_[idx]);
  }
}

}  // namespace dog::membership
