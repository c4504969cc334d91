// Target: the SWIM packet path (membership/): Keyring::open, the replay window, wire decode and
// Swim's handlers, on a fresh Swim per input (fixed key, manual clock, captured sends).
//
// A sealed packet cannot be forged by a fuzzer, so the target seals what it delivers itself,
// with the cluster key, exactly as a peer holding it would (tests/membership/harness.h). Input:
// a list of records [op][len LE16][bytes]; the low 3 bits of op choose
//   0  `bytes` is a packed Datagram (wire.h): sealed as a datagram, then on_datagram
//   1  `bytes` is a packed PushPull: sealed as a stream frame, then on_stream
//   2  `bytes` go to on_datagram unsealed (the open/AEAD path: must be dropped)
//   3  `bytes` go to on_stream unsealed
//   4  advance the clock by `len` ms and run the timers (no bytes)
//   5  a Datagram built field by field from `bytes` (so the handlers see well-formed messages
//      with fuzzer-chosen names, kinds, incarnations and sessions), encoded, sealed, delivered
//   6  the same as a PushPull (members with fuzzer-chosen states)
// Bits 4-5 of op choose the sender's session (1..4); bit 6 re-uses the previous nonce counter
// (a replay). Checked: nothing crashes or throws, and the member table stays within its caps.
#include <string>
#include <vector>

#include "membership/swim.h"
#include "membership/wire.h"
#include "tests/fuzz/targets.h"
#include "tests/membership/harness.h"

namespace dog::fuzz {
namespace {

using namespace dog::membership;
using membership::test::Node;

const std::string kNames[] = {"fuzz-self", "a", "b", "c", "d", ""};

std::string name_of(Input& in) { return kNames[in.u8() % std::size(kNames)]; }

Update update_of(Input& in) {
  Update u;
  u.kind = UpdateKind(in.u8() % 6);  // 5 is out of range on purpose
  u.node = name_of(in);
  u.incarnation = in.u8() & 0x80 ? kMaxIncarnation + in.u8() : in.u8();
  u.addr = u.node + ":1";
  u.from = name_of(in);
  u.session = in.u8() % 4;
  if (in.u8() & 1) u.meta.zone.assign(in.u8(), 'z');
  if (u.kind == UpdateKind::kUser) u.payload.assign(in.u8(), 'p');
  return u;
}

Datagram datagram_of(Input& in) {
  Datagram d;
  d.from = name_of(in);
  d.kind = MsgKind(in.u8() % 6);
  d.seq = in.u8();
  d.target = name_of(in);
  d.target_addr = d.target + ":1";
  d.want_nack = in.u8() & 1;
  for (int n = in.u8() % 8; n > 0 && !in.empty(); --n) d.updates.push_back(update_of(in));
  return d;
}

PushPull pushpull_of(Input& in) {
  PushPull p;
  p.from = name_of(in);
  p.from_addr = p.from + ":1";
  p.kind = SyncKind(in.u8() % 4);
  p.join = in.u8() & 1;
  p.want_reply = in.u8() & 1;
  p.digest = in.u8();
  for (int n = in.u8() % 8; n > 0 && !in.empty(); --n) {
    MemberInfo m;
    m.name = name_of(in);
    m.addr = m.name + ":1";
    m.incarnation = in.u8();
    m.state = MemberState(in.u8() % 4);
    m.session = in.u8() % 4;
    p.members.push_back(std::move(m));
  }
  return p;
}

}  // namespace

int swim_packet(const uint8_t* data, size_t size) {
  static const Keyring::Key key = membership::test::test_key(7);
  Node node("fuzz-self", key, Config::local(), /*seed=*/1);
  node.swim.start();
  Input in(data, size);
  uint64_t counter = 0;
  std::vector<uint8_t> plain;
  for (int records = 0; records < 64 && !in.empty(); ++records) {
    const uint8_t op = in.u8();
    const uint16_t len = in.u16();
    size_t got = 0;
    const uint8_t* bytes = op % 8 == 4 ? nullptr : in.take(len, &got);
    const uint64_t session = 1 + ((op >> 4) & 3);
    if (!(op & 0x40)) ++counter;
    const std::string from = "peer:1";
    switch (op % 8) {
      case 0:
        node.swim.on_datagram(from, membership::test::seal_as_peer(node.ring, {bytes, got}, kDatagramAd, counter, session));
        break;
      case 1:
        node.swim.on_stream(from, membership::test::seal_as_peer(node.ring, {bytes, got}, kStreamAd, counter, session));
        break;
      case 2: node.swim.on_datagram(from, {bytes, got}); break;
      case 3: node.swim.on_stream(from, {bytes, got}); break;
      case 4: node.advance(std::chrono::milliseconds(len % 10'000)); break;
      case 5: {
        Input fields(bytes, got);
        encode(datagram_of(fields), plain);
        node.swim.on_datagram(from, membership::test::seal_as_peer(node.ring, plain, kDatagramAd, counter, session));
        break;
      }
      case 6: {
        Input fields(bytes, got);
        encode(pushpull_of(fields), plain);
        node.swim.on_stream(from, membership::test::seal_as_peer(node.ring, plain, kStreamAd, counter, session));
        break;
      }
      default: break;
    }
    node.transport.sent.clear();
  }
  const auto& cfg = node.swim.config();
  for (const auto& m : node.swim.members())
    fuzz_check(m.name.size() <= cfg.max_name_bytes, "member names within max_name_bytes");
  fuzz_check(node.swim.num_live() >= 1, "we are alive to ourselves");
  return 0;
}

}  // namespace dog::fuzz
