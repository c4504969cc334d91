// The membership view that placement is computed from, and the hashing of its members.
//
// routing/ does not depend on membership/: whoever owns the live membership (node/) converts its
// snapshot into this plain View. Two views with the same epoch must have the same members; the
// order of `members` never matters (placement sorts them by node_id first).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dog::routing {

// One node that can own objects.
struct Member {
  // Stable identity of the node (the membership name, e.g. "node-7" or "10.0.0.7:7946"). Placement
  // hashes this string, so renaming a node moves its objects.
  std::string node_id;
  // Relative capacity: a member of weight 2 owns twice the share of a member of weight 1.
  // REQUIRES: finite, > 0 and <= kMaxWeight. Weights are quantised to multiples of
  // 1/tokens_per_weight (1/128 by default, routing_table.h), so 1.0 and 1.001 place identically.
  double weight = 1.0;
};

// A snapshot of the membership at one epoch.
struct View {
  // Increases on every membership change. Routing tables and their answers carry it (the epoch
  // rule in routing_table.h).
  uint64_t epoch = 0;
  std::vector<Member> members;
};

inline constexpr double kMaxWeight = 64.0;
inline constexpr size_t kMaxMembers = 65535;  // members are indexed with 16 bits

// Why a view cannot be routed. The caller should fix or reject the view; none is transient.
enum class ViewError {
  kEmpty,           // no members: nothing can own an object
  kDuplicateNode,   // two members share a node_id
  kBadWeight,       // weight not finite, <= 0 or > kMaxWeight
  kTooManyMembers,  // more than kMaxMembers
  kTooManyTokens,   // sum of weights too large for the table (routing_table.h)
};

struct ViewProblem {
  ViewError error;
  std::string message;
};

// Checks the member-level rules above (not the token budget, which depends on TableParams).
std::optional<ViewProblem> check_view(const View& view);

// Indices into view.members sorted by node_id (byte order): the canonical member order that
// RoutingTable member numbers refer to. REQUIRES: check_view(view) found no problem.
std::vector<uint32_t> canonical_order(const View& view);

// A short stable name for a ViewError ("empty", "duplicate_node", ...).
std::string_view to_string(ViewError error);

}  // namespace dog::routing
