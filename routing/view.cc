#include "routing/view.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "routing/hash.h"

namespace dog::routing {

std::optional<ViewProblem> check_view(const View& view) {
  if (view.members.empty()) return ViewProblem{ViewError::kEmpty, "view has no members"};
  if (view.members.size() > kMaxMembers) {
    return ViewProblem{ViewError::kTooManyMembers,
                       "view has " + std::to_string(view.members.size()) +
                           " members, the limit is " + std::to_string(kMaxMembers)};
  }
  for (const Member& m : view.members) {
    if (!std::isfinite(m.weight) || m.weight <= 0 || m.weight > kMaxWeight) {
      return ViewProblem{ViewError::kBadWeight, "member '" + m.node_id + "' has weight " +
                                                    std::to_string(m.weight) +
                                                    ", expected 0 < weight <= 64"};
    }
  }
  const std::vector<uint32_t> order = canonical_order(view);
  for (size_t i = 1; i < order.size(); ++i) {
    const std::string& a = view.members[order[i - 1]].node_id;
    if (a == view.members[order[i]].node_id) {
      return ViewProblem{ViewError::kDuplicateNode, "node id '" + a + "' appears twice"};
    }
  }
  return std::nullopt;
}

std::vector<uint32_t> canonical_order(const View& view) {
  std::vector<uint32_t> order(view.members.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return view.members[a].node_id < view.members[b].node_id;
  });
  return order;
}

std::string_view to_string(ViewError error) {
  switch (error) {
    case ViewError::kEmpty:
      return "empty";
    case ViewError::kDuplicateNode:
      return "duplicate_node";
    case ViewError::kBadWeight:
      return "bad_weight";
    case ViewError::kTooManyMembers:
      return "too_many_members";
    case ViewError::kTooManyTokens:
      return "too_many_tokens";
  }
  return "unknown";
}

namespace detail {

uint64_t node_hash(std::string_view node_id) {
  static constexpr std::string_view kKey = "dog.routing.node.v1";
  static const int init = sodium_init();
  if (init < 0) throw std::runtime_error("libsodium initialisation failed");
  unsigned char out[8];
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(node_id.data()),
                     node_id.size(), reinterpret_cast<const unsigned char*>(kKey.data()),
                     kKey.size());
  uint64_t h = 0;
  for (unsigned char b : out) h = (h << 8) | b;
  return h;
}

}  // namespace detail
}  // namespace dog::routing
