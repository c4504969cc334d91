#include <catch2/catch.hpp>

#include "membership/broadcast_queue.h"
#include "membership/replay_window.h"
#include "membership/suspicion.h"

using namespace dog::membership;
using std::chrono::seconds;

namespace {
Update sys(const std::string& node, uint64_t inc, UpdateKind k = UpdateKind::kAlive) {
  Update u;
  u.kind = k;
  u.node = node;
  u.incarnation = inc;
  u.addr = node;
  return u;
}
Update user(const std::string& origin, uint64_t seq, size_t bytes) {
  Update u;
  u.kind = UpdateKind::kUser;
  u.node = origin;
  u.incarnation = seq;
  u.payload.assign(bytes, 'x');
  return u;
}
}  // namespace

TEST_CASE("broadcast queue retransmits each update exactly limit times") {
  BroadcastQueue q;
  q.push(sys("a", 1), BroadcastClass::kSystem);
  int sends = 0;
  for (int i = 0; i < 10; ++i) {
    std::vector<Update> out;
    q.take(1400, 4, 64, out);
    sends += static_cast<int>(out.size());
  }
  CHECK(sends == 4);
  CHECK(q.empty());
}

TEST_CASE("broadcast queue puts system updates before user payloads and fewest-sent first") {
  BroadcastQueue q;
  q.push(user("u", 1, 100), BroadcastClass::kUser);
  q.push(sys("a", 1), BroadcastClass::kSystem);
  std::vector<Update> out;
  q.take(1400, 10, 1, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].node == "a");
  q.push(sys("b", 1), BroadcastClass::kSystem);  // b has 0 sends, a has 1
  out.clear();
  q.take(1400, 10, 1, out);
  CHECK(out[0].node == "b");
  out.clear();
  q.take(1400, 10, 3, out);
  REQUIRE(out.size() == 3);
  CHECK(out[2].kind == UpdateKind::kUser);
}

TEST_CASE("broadcast queue replaces older updates about the same node") {
  BroadcastQueue q;
  q.push(sys("a", 1), BroadcastClass::kSystem);
  q.push(sys("a", 2, UpdateKind::kSuspect), BroadcastClass::kSystem);
  CHECK(q.size() == 1);
  std::vector<Update> out;
  q.take(1400, 10, 64, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].incarnation == 2);
  CHECK(out[0].kind == UpdateKind::kSuspect);
}

TEST_CASE("broadcast queue never exceeds the byte budget and keeps what does not fit") {
  BroadcastQueue q;
  for (int i = 0; i < 50; ++i) q.push(user("u", static_cast<uint64_t>(i), 200), BroadcastClass::kUser);
  std::vector<Update> out;
  const size_t used = q.take(1000, 10, 64, out);
  CHECK(used <= 1000);
  size_t est = 0;
  for (auto& u : out) est += encoded_size_estimate(u);
  CHECK(est == used);
  CHECK(out.size() < 50);
  CHECK(q.size() == 50);  // none reached the limit
}

TEST_CASE("broadcast queue caps user payloads but never system updates") {
  BroadcastQueue q(4);
  for (int i = 0; i < 10; ++i) q.push(user("u", static_cast<uint64_t>(i), 10), BroadcastClass::kUser);
  for (int i = 0; i < 10; ++i) q.push(sys("n" + std::to_string(i), 1), BroadcastClass::kSystem);
  CHECK(q.user_size() == 4);
  CHECK(q.size() == 14);
}

TEST_CASE("suspicion deadline shrinks only with independent confirmations") {
  const Duration min = seconds(4), max = seconds(24);
  Suspicion s("a", 2, TimePoint(seconds(100)), min, max);
  CHECK(s.deadline() == TimePoint(seconds(124)));
  CHECK_FALSE(s.confirm("a"));  // the original accuser does not count
  CHECK(s.confirm("b"));
  CHECK_FALSE(s.confirm("b"));  // nor does the same confirmer twice
  CHECK(s.deadline() < TimePoint(seconds(124)));
  CHECK(s.deadline() > TimePoint(seconds(104)));
  CHECK(s.confirm("c"));
  CHECK(s.deadline() == TimePoint(seconds(104)));
  CHECK_FALSE(s.confirm("d"));  // k reached
  CHECK(s.confirmations() == 2);
}

TEST_CASE("replay window accepts each counter once and tolerates reordering") {
  ReplayWindow w;
  CHECK(w.accept("a", 1, 10));
  CHECK_FALSE(w.accept("a", 1, 10));
  CHECK(w.accept("a", 1, 12));
  CHECK(w.accept("a", 1, 11));  // reordered, inside the window
  CHECK_FALSE(w.accept("a", 1, 11));
  CHECK(w.accept("a", 1, 200));
  CHECK_FALSE(w.accept("a", 1, 100));  // older than the 64-entry window
  CHECK_FALSE(w.accept("a", 0, 500));  // stale session
  CHECK(w.accept("a", 2, 1));          // restarted sender
  CHECK(w.accept("b", 1, 10));         // independent per sender
}
