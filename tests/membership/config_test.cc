#include <catch2/catch.hpp>

#include "membership/awareness.h"
#include "membership/config.h"

using namespace dog::membership;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_CASE("suspicion_timeout_min follows mult x max(1, log10 N) x T") {
  struct Row { double mult; size_t n; Duration want; };
  // memberlist's LAN table (SuspicionMult 4, T = 1 s) plus our LAN multiplier 1.25.
  const Row rows[] = {
      {4, 1, seconds(4)},   {4, 10, seconds(4)},    {4, 100, seconds(8)},
      {4, 1000, seconds(12)}, {4, 10000, seconds(16)}, {1.25, 1000, milliseconds(3750)},
      {1.25, 5, milliseconds(1250)},
  };
  for (const Row& r : rows) {
    INFO("mult " << r.mult << " n " << r.n);
    CHECK(suspicion_timeout_min(r.mult, r.n, seconds(1)) == r.want);
  }
}

TEST_CASE("suspicion_timeout shrinks from max to min with confirmations") {
  const Duration min = seconds(12), max = seconds(72);  // memberlist LAN at N=1000
  CHECK(suspicion_timeout(min, max, 2, 0) == max);
  // 72 - log(2)/log(3) * 60 = 34.14 s
  CHECK(suspicion_timeout(min, max, 2, 1).count() == Approx(34143000).margin(2000));
  CHECK(suspicion_timeout(min, max, 2, 2) == min);
  CHECK(suspicion_timeout(min, max, 2, 5) == min);  // never below min
  CHECK(suspicion_timeout(min, max, 0, 0) == min);  // k = 0: plain SWIM
  CHECK(suspicion_timeout(min, min, 3, 0) == min);  // Lifeguard off: max == min
}

TEST_CASE("retransmit_limit is mult x ceil(log10(N+1))") {
  struct Row { uint32_t mult; size_t n; uint32_t want; };
  const Row rows[] = {{4, 1, 4}, {4, 9, 4}, {4, 10, 8}, {4, 99, 8}, {4, 100, 12}, {4, 1000, 16}, {4, 10000, 20}, {2, 1000, 8}};
  for (const Row& r : rows) {
    INFO("n " << r.n);
    CHECK(retransmit_limit(r.mult, r.n) == r.want);
  }
}

TEST_CASE("push_pull_scale grows with log2 N above 32 members") {
  struct Row { size_t n; uint32_t want; };
  const Row rows[] = {{1, 1}, {32, 1}, {33, 2}, {64, 2}, {65, 3}, {100, 3}, {1000, 6}, {10000, 10}};
  for (const Row& r : rows) {
    INFO("n " << r.n);
    CHECK(push_pull_scale(r.n) == r.want);
  }
}

TEST_CASE("presets validate and invalid configs are rejected") {
  CHECK_FALSE(Config::lan().validate());
  CHECK_FALSE(Config::wan().validate());
  CHECK_FALSE(Config::local().validate());
  Config c = Config::lan();
  c.indirect_timeout = seconds(1);  // probe deadline past T
  CHECK(c.validate());
  c = Config::lan();
  c.max_datagram_bytes = 100;
  CHECK(c.validate());
  c = Config::lan();
  c.nack_fraction = 1.0;
  CHECK(c.validate());
}

TEST_CASE("awareness multiplier is clamped to [1, max]") {
  Awareness a(8);
  CHECK(a.multiplier() == 1);
  a.apply(-3);
  CHECK(a.score() == 0);
  a.apply(5);
  CHECK(a.multiplier() == 6);
  CHECK(a.scale(seconds(1)) == seconds(6));
  a.apply(100);
  CHECK(a.multiplier() == 8);
  Awareness off(1);
  off.apply(5);
  CHECK(off.multiplier() == 1);
}
