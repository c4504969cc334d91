// Placement helpers on top of RoutingTable: one-off owner queries over a View, and load-aware
// creation of new ids ("power of two choices").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "routing/object_id.h"
#include "routing/routing_table.h"
#include "routing/view.h"

namespace dog::routing {

// An owner decision that owns its strings (unlike Owner, which points into a table).
struct Decision {
  std::string node_id;
  uint64_t epoch = 0;
};

// The owner of `id` under `view`, or nullopt if the view is invalid (check_view()). Builds a
// table per call (milliseconds at 1000 members): for repeated queries build a RoutingTable once.
std::optional<Decision> owner(const ObjectId& id, const View& view);

// RoutingTable::successors() for a one-off query; empty if the view is invalid.
std::vector<Decision> successors(const ObjectId& id, const View& view, size_t k);

// The load a member reports (membership metadata), e.g. its Replica count. Lower is better.
// Called with the candidate owner; must not block.
using LoadFn = std::function<double(const Owner& owner)>;

// Creates the id of a new Replica so that it lands on a lightly loaded member: draws `choices`
// candidate ids from `entropy` (each a normal new_unique id of `ns`) and returns the one whose
// owner under `table` reports the least load; ties keep the earlier candidate. The result is an
// ordinary id: anyone routes it with owner() and nothing else must be stored or looked up.
// With choices = 2 the maximum Replica count per member stays within a few percent of the mean
// (docs/routing.md). REQUIRES: choices >= 1.
ObjectId place_new(const IdNamespace& ns, const RoutingTable& table, const LoadFn& load,
                   const EntropyFn& entropy, int choices = 2);

// As above with libsodium randomness.
ObjectId place_new(const IdNamespace& ns, const RoutingTable& table, const LoadFn& load,
                   int choices = 2);

}  // namespace dog::routing
