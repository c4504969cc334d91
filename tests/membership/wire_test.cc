#include <catch2/catch.hpp>

#include "membership/wire.h"

using namespace dog::membership;

TEST_CASE("datagram round-trips through packed capnp") {
  Datagram d;
  d.from = "node-a";
  d.kind = MsgKind::kPingReq;
  d.seq = 77;
  d.target = "node-b";
  d.target_addr = "10.0.0.2:7946";
  d.want_nack = true;
  Update u;
  u.kind = UpdateKind::kAlive;
  u.node = "node-c";
  u.incarnation = 5;
  u.addr = "10.0.0.3:7946";
  u.meta = Meta{"10.0.0.3:9000", "10.0.0.3:8080", "zone-1", 3, "dog 0.1"};
  u.meta.load = 42;
  u.session = 1764770000123456789ULL;
  d.updates.push_back(u);
  std::vector<uint8_t> bytes;
  encode(d, bytes);
  Datagram r;
  REQUIRE(decode(bytes, WireLimits{}, r));
  CHECK(r.from == "node-a");
  CHECK(r.kind == MsgKind::kPingReq);
  CHECK(r.seq == 77);
  CHECK(r.target_addr == "10.0.0.2:7946");
  CHECK(r.want_nack);
  REQUIRE(r.updates.size() == 1);
  CHECK(r.updates[0].meta == u.meta);
  CHECK(r.updates[0].incarnation == 5);
  CHECK(r.updates[0].session == u.session);
  CHECK(r.updates[0].meta.load == 42);
  CHECK(bytes.size() < 220);  // packed
}

TEST_CASE("decoder rejects truncated, garbage and over-limit input") {
  Datagram d;
  d.from = "a";
  d.kind = MsgKind::kPing;
  d.target = "b";
  std::vector<uint8_t> bytes;
  encode(d, bytes);
  Datagram r;
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    INFO("length " << n);
    CHECK_FALSE(decode(cut, WireLimits{}, r));
  }
  std::vector<uint8_t> garbage(300, 0xff);
  CHECK_FALSE(decode(garbage, WireLimits{}, r));
  WireLimits tight;
  tight.max_name_bytes = 0;
  CHECK_FALSE(decode(bytes, tight, r));
  // A packed zero-run expanding far beyond the traversal limit is refused before parsing.
  std::vector<uint8_t> bomb;
  for (int i = 0; i < 200; ++i) { bomb.push_back(0); bomb.push_back(0xff); }
  CHECK_FALSE(decode(bomb, WireLimits{}, r));
}

TEST_CASE("push-pull round-trips member records") {
  PushPull p;
  p.from = "a";
  p.from_addr = "a:1";
  p.kind = SyncKind::kFull;
  p.join = true;
  p.want_reply = true;
  p.digest = 0xdeadbeef;
  for (int i = 0; i < 100; ++i) {
    p.members.push_back(MemberInfo{"n" + std::to_string(i), "addr", static_cast<uint64_t>(i), MemberState::kSuspect, Meta{}});
    p.members.back().session = 1000 + i;
  }
  std::vector<uint8_t> bytes;
  encode(p, bytes);
  PushPull r;
  REQUIRE(decode(bytes, WireLimits{}, r));
  CHECK(r.members.size() == 100);
  CHECK(r.members[42].incarnation == 42);
  CHECK(r.members[42].state == MemberState::kSuspect);
  CHECK(r.members[42].session == 1042);
  CHECK(r.digest == 0xdeadbeef);
  WireLimits few;
  few.max_members = 10;
  CHECK_FALSE(decode(bytes, few, r));
}
