// Helpers shared by the routing tests: seeded random views and keys, and a reference
// implementation of the placement function written straight from its definition.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "routing/hash.h"
#include "routing/routing_table.h"
#include "routing/view.h"

namespace dog::routing::testing {

// A view of `n` members named "<prefix>-<i>" with weights drawn from {0.5, 1, 1, 2, 3}.
inline View random_view(std::mt19937_64& rng, size_t n, uint64_t epoch,
                        const std::string& prefix = "m", bool weighted = true) {
  static const double kWeights[] = {0.5, 1, 1, 2, 3};
  View view;
  view.epoch = epoch;
  for (size_t i = 0; i < n; ++i) {
    const double w = weighted ? kWeights[rng() % 5] : 1.0;
    view.members.push_back(
        {prefix + "-" + std::to_string(rng() % 1000000) + "-" + std::to_string(i), w});
  }
  return view;
}

inline std::vector<uint64_t> random_keys(std::mt19937_64& rng, size_t n) {
  std::vector<uint64_t> keys(n);
  for (uint64_t& k : keys) k = rng();
  return keys;
}

inline RoutingTable build(const View& view, const TableParams& params = {}) {
  BuildResult built = RoutingTable::build(view, params);
  if (!built.table) throw std::runtime_error("build failed: " + built.message);
  return std::move(*built.table);
}

// The owner of `key` by the definition in routing_table.h, without the table: walk slots
// backwards from the key's slot; in the first slot that holds tokens, the token with the highest
// race score wins, ties going to the smallest node id. O(total tokens) per call.
inline std::string reference_owner(const View& view, uint64_t key, const TableParams& params = {}) {
  const uint32_t shift = 64 - params.slot_bits;
  const uint64_t slots = uint64_t{1} << params.slot_bits;
  struct Token {
    uint64_t slot;
    uint32_t race;
    const std::string* node;
  };
  std::vector<Token> tokens;
  for (const Member& m : view.members) {
    const uint64_t h = detail::node_hash(m.node_id);
    const long long count =
        std::max<long long>(1, std::llround(m.weight * params.tokens_per_weight));
    for (long long j = 0; j < count; ++j) {
      const uint64_t t = detail::token_hash(h, static_cast<uint32_t>(j));
      tokens.push_back({t >> shift, detail::token_race_id(t), &m.node_id});
    }
  }
  for (uint64_t step = 0; step < slots; ++step) {
    const uint64_t slot = ((key >> shift) + slots - step) % slots;
    const std::string* best = nullptr;
    uint32_t best_score = 0;
    for (const Token& t : tokens) {
      if (t.slot != slot) continue;
      const uint32_t score = detail::race_score(key, t.race);
      if (!best || score > best_score || (score == best_score && *t.node < *best)) {
        best = t.node;
        best_score = score;
      }
    }
    if (best) return *best;
  }
  return "";
}

}  // namespace dog::routing::testing
