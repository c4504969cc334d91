// GroupCore as a pure state machine: DOG's worked trace (dog-semantics §4), step by step.
#include <catch2/catch.hpp>

#include "node/runtime/group_core.h"

using dog::runtime::GroupCore;

TEST_CASE("GroupCore replays DOG's worked trace with limit 2", "[group_core]") {
  GroupCore g;
  const int L = 2;
  // 1. identify(A): nothing known -> new R1.
  REQUIRE_FALSE(g.place("A", L));
  CHECK(g.add_new("A", "R1", L).empty());
  CHECK(g.current() == "R1");
  // 2. identify(B): sticky R1 has room.
  CHECK(g.place("B", L) == "R1");
  CHECK(g.count("R1") == 2);
  CHECK_FALSE(g.current());
  // 3. identify(C): R1 full, nothing sorted with room -> new R2, introduced to R1.
  REQUIRE_FALSE(g.place("C", L));
  CHECK(g.add_new("C", "R2", L) == std::vector<std::string>{"R1"});
  CHECK(g.mapping("C") == "R2");
  // 4. identify(A) again: R1 full -> least loaded with room R2; mapping moves.
  CHECK(g.place("A", L) == "R2");
  CHECK(g.mapping("A") == "R2");
  CHECK(g.count("R2") == 2);
  // 5. A's socket on R1 closes, empty: R1 back to 1, A's mapping deleted, R1 sticky.
  CHECK(g.close("R1", "A", true, L) == GroupCore::CloseResult::kOk);
  CHECK(g.count("R1") == 1);
  CHECK_FALSE(g.mapping("A"));
  CHECK(g.current() == "R1");
  // 6. identify(D): sticky R1.
  CHECK(g.place("D", L) == "R1");
}

TEST_CASE("GroupCore forget removes a Replica from every structure", "[group_core]") {
  GroupCore g;
  g.place("A", 1);
  g.add_new("A", "R1", 1);
  g.place("B", 1);
  g.add_new("B", "R2", 1);
  g.close("R2", "B", false, 1);  // R2 sticky, B still mapped to R2
  g.forget("R2");
  CHECK(g.replicas() == std::vector<std::string>{"R1"});
  CHECK_FALSE(g.current());
  CHECK_FALSE(g.mapping("B"));
  CHECK(g.close("R2", "B", true, 1) == GroupCore::CloseResult::kUnknownReplica);
  // A new request id now needs a new Replica (R1 is full), not the forgotten one.
  CHECK_FALSE(g.place("C", 1));
}
