// Tests for placement.h: one-off owner queries and power-of-two-choices creation of ids.
#include "routing/placement.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>

#include "test_util.h"

namespace dog::routing {
namespace {

using testing::build;
using testing::random_view;

// A reproducible entropy source.
EntropyFn seeded(uint64_t seed) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  return [rng](std::span<uint8_t> out) {
    for (uint8_t& b : out) b = static_cast<uint8_t>((*rng)());
  };
}

TEST_CASE("routing: free owner and successors agree with a built table", "[routing][placement]") {
  std::mt19937_64 rng(20);
  const View view = random_view(rng, 30, 5);
  const RoutingTable t = build(view);
  for (int i = 0; i < 50; ++i) {
    const ObjectId id = id_from_name("free", std::to_string(i));
    const std::optional<Decision> d = owner(id, view);
    REQUIRE(d.has_value());
    CHECK(d->node_id == t.owner(id).node_id);
    CHECK(d->epoch == 5);
    const std::vector<Decision> s = successors(id, view, 3);
    REQUIRE(s.size() == 3);
    CHECK(s[0].node_id == d->node_id);
  }
  CHECK_FALSE(owner(id_from_name("free", "x"), View{}).has_value());
  CHECK(successors(id_from_name("free", "x"), View{}, 3).empty());
}

TEST_CASE("routing: place_new keeps the candidate whose owner reports less load",
          "[routing][placement]") {
  std::mt19937_64 rng(21);
  const RoutingTable t = build(random_view(rng, 40, 1));
  const IdNamespace ns("replicas");
  // Arbitrary but fixed loads per member.
  auto load_of = [](const Owner& o) { return double((o.member * 7919) % 101); };
  for (uint64_t seed = 0; seed < 200; ++seed) {
    // Replay the same entropy to see both candidates.
    const EntropyFn replay = seeded(seed);
    const ObjectId first = ns.new_unique(replay);
    const ObjectId second = ns.new_unique(replay);
    const ObjectId placed = place_new(ns, t, load_of, seeded(seed));
    const double l1 = load_of(t.owner(first)), l2 = load_of(t.owner(second));
    CHECK(placed == (l2 < l1 ? second : first));
    CHECK(ns.owns(placed));
    CHECK(ns.parse(placed.to_string()).ok());
  }
  // One choice is a plain new_unique id.
  CHECK(place_new(ns, t, load_of, seeded(9), 1) == ns.new_unique(seeded(9)));
  CHECK_THROWS_AS(place_new(ns, t, load_of, seeded(9), 0), std::invalid_argument);
  // The libsodium overload gives ids of the namespace too.
  CHECK(ns.owns(place_new(ns, t, load_of)));
}

double max_over_mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return *std::max_element(v.begin(), v.end()) / (sum / double(v.size()));
}

TEST_CASE("routing: two choices spread new replicas more evenly than one", "[routing][placement]") {
  std::mt19937_64 rng(22);
  const RoutingTable t = build(random_view(rng, 100, 1, "m", false));
  const IdNamespace ns("replicas");
  double spread[3] = {0, 0, 0};
  for (int choices : {1, 2}) {
    std::vector<double> load(t.member_count(), 0);
    const EntropyFn entropy = seeded(100 + choices);
    const LoadFn load_fn = [&](const Owner& o) { return load[o.member]; };
    for (int r = 0; r < 10000; ++r)
      load[t.owner(place_new(ns, t, load_fn, entropy, choices)).member]++;
    spread[choices] = max_over_mean(load);
  }
  // 100 replicas per member on average: one choice gives about 1.3, two choices about 1.05.
  CHECK(spread[2] < spread[1]);
  CHECK(spread[2] <= 1.12);
}

}  // namespace
}  // namespace dog::routing
