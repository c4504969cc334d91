#include "membership/wire.h"

#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <kj/io.h>

#include <cstring>

#include "wire.capnp.h"

namespace dog::membership {

namespace cw = capnp_wire;

namespace {

constexpr size_t kScratchWords = 512;

void set_meta(cw::Meta::Builder b, const Meta& m) {
  if (!m.rpc_addr.empty()) b.setRpcAddr(m.rpc_addr);
  if (!m.http_addr.empty()) b.setHttpAddr(m.http_addr);
  if (!m.zone.empty()) b.setZone(m.zone);
  b.setCapacity(m.capacity);
  b.setLoad(m.load);
  if (!m.build_version.empty()) b.setBuildVersion(m.build_version);
}

bool copy_text(capnp::Text::Reader t, size_t max, std::string& out) {
  if (t.size() > max) return false;
  out.assign(t.cStr(), t.size());
  return true;
}

bool get_meta(cw::Meta::Reader r, size_t max, Meta& m) {
  if (!copy_text(r.getRpcAddr(), max, m.rpc_addr) || !copy_text(r.getHttpAddr(), max, m.http_addr) ||
      !copy_text(r.getZone(), max, m.zone) || !copy_text(r.getBuildVersion(), max, m.build_version))
    return false;
  m.capacity = r.getCapacity();
  m.load = r.getLoad();
  return m.byte_size() <= max;
}

void write_packed(capnp::MessageBuilder& mb, std::vector<uint8_t>& out) {
  auto segs = mb.getSegmentsForOutput();
  size_t words = capnp::computeSerializedSizeInWords(segs);
  // Packed output is at most 10/8 of the unpacked size (one tag byte per word, plus run counts).
  out.resize(words * 10 + 16);
  kj::ArrayOutputStream os(kj::arrayPtr(out.data(), out.size()));
  capnp::writePackedMessage(os, segs);
  out.resize(os.getArray().size());
}

capnp::ReaderOptions reader_options(const WireLimits& l) {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = l.traversal_limit_words;
  o.nestingLimit = l.nesting_limit;
  return o;
}

}  // namespace

void encode(const Datagram& d, std::vector<uint8_t>& out) {
  alignas(8) static thread_local capnp::word scratch[kScratchWords];
  std::memset(scratch, 0, sizeof(scratch));
  capnp::MallocMessageBuilder mb(kj::arrayPtr(scratch, kScratchWords));
  auto root = mb.initRoot<cw::Datagram>();
  root.setFrom(d.from);
  root.setKind(static_cast<cw::MsgKind>(d.kind));
  root.setSeq(d.seq);
  if (!d.target.empty()) root.setTarget(d.target);
  if (!d.target_addr.empty()) root.setTargetAddr(d.target_addr);
  root.setWantNack(d.want_nack);
  if (!d.updates.empty()) {
    auto list = root.initUpdates(static_cast<unsigned>(d.updates.size()));
    for (unsigned i = 0; i < d.updates.size(); ++i) {
      const Update& u = d.updates[i];
      auto b = list[i];
      b.setKind(static_cast<cw::UpdateKind>(u.kind));
      b.setNode(u.node);
      b.setIncarnation(u.incarnation);
      b.setSession(u.session);
      if (!u.addr.empty()) b.setAddr(u.addr);
      if (!u.from.empty()) b.setFrom(u.from);
      if (u.kind == UpdateKind::kAlive) set_meta(b.initMeta(), u.meta);
      if (!u.payload.empty())
        b.setPayload(capnp::Data::Reader(reinterpret_cast<const uint8_t*>(u.payload.data()), u.payload.size()));
    }
  }
  write_packed(mb, out);
}

void encode(const PushPull& p, std::vector<uint8_t>& out) {
  capnp::MallocMessageBuilder mb;
  auto root = mb.initRoot<cw::PushPull>();
  root.setFrom(p.from);
  root.setFromAddr(p.from_addr);
  root.setKind(static_cast<cw::SyncKind>(p.kind));
  root.setJoin(p.join);
  root.setWantReply(p.want_reply);
  root.setDigest(p.digest);
  if (!p.members.empty()) {
    auto list = root.initMembers(static_cast<unsigned>(p.members.size()));
    for (unsigned i = 0; i < p.members.size(); ++i) {
      const MemberInfo& m = p.members[i];
      auto b = list[i];
      b.setName(m.name);
      b.setAddr(m.addr);
      b.setIncarnation(m.incarnation);
      b.setSession(m.session);
      b.setStatus(static_cast<cw::MemberStatus>(m.state));
      set_meta(b.initMeta(), m.meta);
    }
  }
  write_packed(mb, out);
}

bool decode(std::span<const uint8_t> bytes, const WireLimits& limits, Datagram& out) {
  alignas(8) static thread_local capnp::word scratch[kScratchWords * 4];
  try {
    kj::ArrayPtr<const kj::byte> in(bytes.data(), bytes.size());
    if (capnp::computeUnpackedSizeInWords(in) > limits.traversal_limit_words) return false;
    kj::ArrayInputStream is(in);
    capnp::PackedMessageReader reader(is, reader_options(limits), kj::arrayPtr(scratch, kScratchWords * 4));
    auto root = reader.getRoot<cw::Datagram>();
    out.clear();
    if (!copy_text(root.getFrom(), limits.max_name_bytes, out.from) || out.from.empty()) return false;
    auto kind = static_cast<uint16_t>(root.getKind());
    if (kind > static_cast<uint16_t>(MsgKind::kGossip)) return false;
    out.kind = static_cast<MsgKind>(kind);
    out.seq = root.getSeq();
    if (!copy_text(root.getTarget(), limits.max_name_bytes, out.target)) return false;
    if (!copy_text(root.getTargetAddr(), limits.max_addr_bytes, out.target_addr)) return false;
    out.want_nack = root.getWantNack();
    auto list = root.getUpdates();
    if (list.size() > limits.max_updates) return false;
    out.updates.resize(list.size());
    for (unsigned i = 0; i < list.size(); ++i) {
      auto r = list[i];
      Update& u = out.updates[i];
      auto uk = static_cast<uint16_t>(r.getKind());
      if (uk > static_cast<uint16_t>(UpdateKind::kUser)) return false;
      u.kind = static_cast<UpdateKind>(uk);
      if (!copy_text(r.getNode(), limits.max_name_bytes, u.node) || u.node.empty()) return false;
      u.incarnation = r.getIncarnation();
      u.session = r.getSession();
      if (!copy_text(r.getAddr(), limits.max_addr_bytes, u.addr)) return false;
      if (!copy_text(r.getFrom(), limits.max_name_bytes, u.from)) return false;
      u.meta = Meta{};
      if (r.hasMeta() && !get_meta(r.getMeta(), limits.max_meta_bytes, u.meta)) return false;
      auto payload = r.getPayload();
      if (payload.size() > limits.max_payload_bytes) return false;
      u.payload.assign(reinterpret_cast<const char*>(payload.begin()), payload.size());
    }
    return true;
  } catch (const kj::Exception&) {
    return false;
  } catch (const std::exception&) {
    return false;
  }
}

bool decode(std::span<const uint8_t> bytes, const WireLimits& limits, PushPull& out) {
  try {
    kj::ArrayPtr<const kj::byte> in(bytes.data(), bytes.size());
    if (capnp::computeUnpackedSizeInWords(in) > limits.traversal_limit_words) return false;
    kj::ArrayInputStream is(in);
    capnp::PackedMessageReader reader(is, reader_options(limits));
    auto root = reader.getRoot<cw::PushPull>();
    if (!copy_text(root.getFrom(), limits.max_name_bytes, out.from) || out.from.empty()) return false;
    if (!copy_text(root.getFromAddr(), limits.max_addr_bytes, out.from_addr)) return false;
    auto kind = static_cast<uint16_t>(root.getKind());
    if (kind > static_cast<uint16_t>(SyncKind::kInSync)) return false;
    out.kind = static_cast<SyncKind>(kind);
    out.join = root.getJoin();
    out.want_reply = root.getWantReply();
    out.digest = root.getDigest();
    auto list = root.getMembers();
    if (list.size() > limits.max_members) return false;
    out.members.resize(list.size());
    for (unsigned i = 0; i < list.size(); ++i) {
      auto r = list[i];
      MemberInfo& m = out.members[i];
      if (!copy_text(r.getName(), limits.max_name_bytes, m.name) || m.name.empty()) return false;
      if (!copy_text(r.getAddr(), limits.max_addr_bytes, m.addr)) return false;
      m.incarnation = r.getIncarnation();
      m.session = r.getSession();
      auto st = static_cast<uint16_t>(r.getStatus());
      if (st > static_cast<uint16_t>(MemberState::kLeft)) return false;
      m.state = static_cast<MemberState>(st);
      m.meta = Meta{};
      if (r.hasMeta() && !get_meta(r.getMeta(), limits.max_meta_bytes, m.meta)) return false;
    }
    return true;
  } catch (const kj::Exception&) {
    return false;
  } catch (const std::exception&) {
    return false;
  }
}

size_t encoded_size_estimate(const Update& u) {
  // Packed Cap'n Proto: a struct word of small integers costs ~2 bytes, a pointer ~5, text ~9/8
  // of its length. The MTU packer uses this to choose updates, then verifies the real sealed size
  // and trims (so an underestimate costs a re-encode, never an oversized datagram).
  auto text = [](size_t n) { return n == 0 ? size_t{0} : (n + 1) * 9 / 8 + 2; };
  size_t bytes = 2 * 2 + 5 * 5 + text(u.node.size()) + text(u.addr.size()) + text(u.from.size()) +
                 text(u.payload.size()) + (u.session != 0 ? 10 : 0);
  if (u.kind == UpdateKind::kAlive)
    bytes += 2 + 6 + 4 * 5 + text(u.meta.rpc_addr.size()) + text(u.meta.http_addr.size()) +
             text(u.meta.zone.size()) + text(u.meta.build_version.size());
  return bytes;
}

}  // namespace dog::membership
