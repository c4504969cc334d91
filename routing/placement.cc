#include "routing/placement.h"

#include <sodium.h>

#include <stdexcept>

namespace dog::routing {

std::optional<Decision> owner(const ObjectId& id, const View& view) {
  BuildResult built = RoutingTable::build(view);
  if (!built.table) return std::nullopt;
  const Owner o = built.table->owner(id);
  return Decision{std::string(o.node_id), o.epoch};
}

std::vector<Decision> successors(const ObjectId& id, const View& view, size_t k) {
  std::vector<Decision> out;
  BuildResult built = RoutingTable::build(view);
  if (!built.table) return out;
  for (const Owner& o : built.table->successors(id, k)) {
    out.push_back(Decision{std::string(o.node_id), o.epoch});
  }
  return out;
}

ObjectId place_new(const IdNamespace& ns, const RoutingTable& table, const LoadFn& load,
                   const EntropyFn& entropy, int choices) {
  if (choices < 1) throw std::invalid_argument("place_new: choices must be >= 1");
  ObjectId best = ns.new_unique(entropy);
  if (choices == 1) return best;
  double best_load = load(table.owner(best));
  for (int c = 1; c < choices; ++c) {
    const ObjectId candidate = ns.new_unique(entropy);
    const double candidate_load = load(table.owner(candidate));
    if (candidate_load < best_load) {
      best = candidate;
      best_load = candidate_load;
    }
  }
  return best;
}

ObjectId place_new(const IdNamespace& ns, const RoutingTable& table, const LoadFn& load,
                   int choices) {
  static const EntropyFn kSodium = [](std::span<uint8_t> out) {
    randombytes_buf(out.data(), out.size());
  };
  return place_new(ns, table, load, kSodium, choices);
}

}  // namespace dog::routing
