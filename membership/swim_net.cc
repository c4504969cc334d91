// SWIM core, part 2: the sealed transport path (nonces, MTU packing, sealing, opening, replay
// checks) and the message handlers (ping, ping-req relay, ack, nack, push/pull)
// (memberlist net.go).
#include <algorithm>
#include <cstring>

#include "membership/swim.h"

namespace dog::membership {

namespace {

// Bytes reserved for the datagram header (from/kind/seq/target, segment table, list pointer)
// before any update is packed; the real size is verified after encoding.
constexpr size_t kHeaderReserve = 24;

uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
void store_le64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
size_t text_estimate(const std::string& s) { return s.empty() ? 0 : (s.size() + 1) * 9 / 8 + 2; }

}  // namespace

Keyring::Nonce Swim::next_nonce() {
  Keyring::Nonce n;
  store_le64(n.data(), cfg_.session_id);
  store_le64(n.data() + 8, ++nonce_counter_);
  store_le64(n.data() + 16, rng_.next());
  return n;
}

void Swim::send_datagram(const std::string& to_addr, Datagram& d, const Update* buddy) {
  d.from = self_name_;
  d.updates.clear();
  const size_t mtu = cfg_.max_datagram_bytes;
  size_t used = Keyring::kOverhead + kHeaderReserve + text_estimate(d.from) +
                text_estimate(d.target) + text_estimate(d.target_addr);
  if (buddy) {
    d.updates.push_back(*buddy);
    used += encoded_size_estimate(*buddy);
  }
  if (used < mtu) {
    queue_.take(mtu - used, retransmit_limit(cfg_.retransmit_mult, n_live_),
                cfg_.max_updates_per_datagram - d.updates.size(), d.updates);
  }
  // Verify the real sealed size; trim piggybacked updates if an estimate was too small.
  for (;;) {
    encode(d, plain_);
    if (plain_.size() + Keyring::kOverhead <= mtu || d.updates.empty()) break;
    d.updates.pop_back();
    ++stats_.packer_trims;
  }
  if (plain_.size() + Keyring::kOverhead > mtu) return;  // cannot happen with validated names
  sealed_.resize(plain_.size() + Keyring::kOverhead);
  const size_t n = keyring_.seal(plain_, kDatagramAd, next_nonce(), sealed_);
  ++stats_.datagrams_sent;
  stats_.datagram_bytes_sent += n;
  stats_.max_datagram_bytes = std::max<uint64_t>(stats_.max_datagram_bytes, n);
  transport_.send_datagram(to_addr, std::span<const uint8_t>(sealed_.data(), n));
}

void Swim::send_push_pull(const std::string& to_addr, SyncKind kind, bool join, bool want_reply) {
  PushPull p;
  p.from = self_name_;
  p.from_addr = members_[0].info.addr;
  p.kind = kind;
  p.join = join;
  p.want_reply = want_reply;
  p.digest = digest_;
  if (kind == SyncKind::kFull) {
    p.members.reserve(n_live_ + std::min(members_.size(), cfg_.max_push_pull_tombstones));
    std::vector<const Member*> tombs;
    for (const Member& m : members_) {
      if (!m.in_use) continue;
      if (m.info.state == MemberState::kAlive || m.info.state == MemberState::kSuspect)
        p.members.push_back(m.info);
      else
        tombs.push_back(&m);
    }
    // The most recent deaths and leaves matter most; older ones are in everyone's view already.
    if (tombs.size() > cfg_.max_push_pull_tombstones) {
      stats_.tombstones_trimmed += tombs.size() - cfg_.max_push_pull_tombstones;
      std::nth_element(tombs.begin(), tombs.begin() + cfg_.max_push_pull_tombstones, tombs.end(),
                       [](const Member* a, const Member* b) { return a->state_change > b->state_change; });
      tombs.resize(cfg_.max_push_pull_tombstones);
    }
    for (const Member* m : tombs) p.members.push_back(m->info);
    ++stats_.full_syncs;
  }
  std::vector<uint8_t> plain;
  encode(p, plain);
  if (plain.size() + Keyring::kOverhead > cfg_.max_stream_bytes) return;
  std::vector<uint8_t> sealed(plain.size() + Keyring::kOverhead);
  const size_t n = keyring_.seal(plain, kStreamAd, next_nonce(), sealed);
  ++stats_.streams_sent;
  stats_.stream_bytes_sent += n;
  transport_.send_stream(to_addr, std::span<const uint8_t>(sealed.data(), n));
}

void Swim::on_datagram(std::string_view from_addr, std::span<const uint8_t> bytes) {
  ++stats_.datagrams_received;
  if (bytes.size() > cfg_.max_datagram_bytes) {
    ++stats_.dropped_oversized;
    return;
  }
  opened_.resize(bytes.size());
  Keyring::Nonce nonce;
  auto len = keyring_.open(bytes, kDatagramAd, opened_, &nonce);
  if (!len) {
    ++stats_.dropped_auth;
    return;
  }
  if (!decode(std::span<const uint8_t>(opened_.data(), *len), limits_, in_msg_)) {
    ++stats_.dropped_malformed;
    return;
  }
  if (in_msg_.from == self_name_ ||
      !replay_dgram_.accept(in_msg_.from, load_le64(nonce.data()), load_le64(nonce.data() + 8))) {
    ++stats_.dropped_replay;
    return;
  }
  sender_ = in_msg_.from;
  heard_from(in_msg_.from);
  handle_datagram(from_addr, in_msg_);
  sender_ = {};
  arm();
}

void Swim::on_stream(std::string_view from_addr, std::span<const uint8_t> bytes) {
  ++stats_.streams_received;
  if (bytes.size() > cfg_.max_stream_bytes) {
    ++stats_.dropped_oversized;
    return;
  }
  std::vector<uint8_t> plain(bytes.size());
  Keyring::Nonce nonce;
  auto len = keyring_.open(bytes, kStreamAd, plain, &nonce);
  if (!len) {
    ++stats_.dropped_auth;
    return;
  }
  if (!decode(std::span<const uint8_t>(plain.data(), *len), stream_limits_, in_pp_)) {
    ++stats_.dropped_malformed;
    return;
  }
  if (in_pp_.from == self_name_ ||
      !replay_stream_.accept(in_pp_.from, load_le64(nonce.data()), load_le64(nonce.data() + 8))) {
    ++stats_.dropped_replay;
    return;
  }
  sender_ = in_pp_.from;
  heard_from(in_pp_.from);
  handle_push_pull(in_pp_);
  sender_ = {};
  arm();
}

void Swim::handle_datagram(std::string_view from_addr, Datagram& d) {
  switch (d.kind) {
    case MsgKind::kPing: {
      if (d.target != self_name_) {
        ++stats_.dropped_misdirected;
        break;
      }
      const uint32_t seq = d.seq;
      // Apply piggybacked updates first: a buddy suspicion is refuted in the ack itself.
      for (const Update& u : d.updates) apply_update(u);
      out_msg_.clear();
      out_msg_.kind = MsgKind::kAck;
      out_msg_.seq = seq;
      send_datagram(std::string(from_addr), out_msg_, nullptr);
      return;
    }
    case MsgKind::kPingReq: {
      if (d.target == self_name_ || d.target_addr.empty()) break;
      const uint32_t rseq = ++seq_;
      Relay& r = relays_[rseq % kRelaySlots];
      r.active = true;
      r.want_nack = d.want_nack;
      r.seq = rseq;
      r.origin_seq = d.seq;
      r.origin_addr.assign(from_addr);
      std::string target_addr = d.target_addr;
      std::string target = d.target;
      for (const Update& u : d.updates) apply_update(u);
      out_msg_.clear();
      out_msg_.kind = MsgKind::kPing;
      out_msg_.seq = rseq;
      out_msg_.target = target;
      send_datagram(target_addr, out_msg_, nullptr);
      // Lifeguard footnote 5: answer (with a nack) well before the origin's deadline.
      const Duration window = cfg_.indirect_timeout - (cfg_.probe_retry ? cfg_.retry_timeout : Duration::zero());
      const auto wait = Duration(static_cast<int64_t>(cfg_.nack_fraction * static_cast<double>(window.count())));
      schedule(clock_.now() + wait, TimerKind::kRelay, rseq % kRelaySlots, rseq);
      return;
    }
    case MsgKind::kAck: {
      if (probe_.active && d.seq == probe_.seq) {
        if (!probe_.acked) {
          probe_.acked = true;
          awareness_.apply(-1);
        }
      } else {
        Relay& r = relays_[d.seq % kRelaySlots];
        if (r.active && r.seq == d.seq) {
          r.active = false;
          std::string origin = std::move(r.origin_addr);
          const uint32_t origin_seq = r.origin_seq;
          for (const Update& u : d.updates) apply_update(u);
          out_msg_.clear();
          out_msg_.kind = MsgKind::kAck;
          out_msg_.seq = origin_seq;
          send_datagram(origin, out_msg_, nullptr);
          return;
        }
      }
      break;
    }
    case MsgKind::kNack:
      if (probe_.active && d.seq == probe_.seq) {
        ++probe_.nacks_received;
        ++stats_.nacks_received;
      }
      break;
    case MsgKind::kGossip:
      break;
  }
  for (const Update& u : d.updates) apply_update(u);
}

void Swim::handle_push_pull(PushPull& p) {
  // Reply to the advertised address: stream replies may come from an ephemeral port.
  const std::string reply_to = p.from_addr;
  switch (p.kind) {
    case SyncKind::kDigest:
      if (!p.want_reply) break;
      if (p.digest == digest_)
        send_push_pull(reply_to, SyncKind::kInSync, false, false);
      else  // views differ: send ours and ask for theirs
        send_push_pull(reply_to, SyncKind::kFull, false, true);
      break;
    case SyncKind::kFull:
      merge_state(p);
      if (p.want_reply) send_push_pull(reply_to, SyncKind::kFull, false, false);
      break;
    case SyncKind::kInSync:
      break;
  }
}

}  // namespace dog::membership
