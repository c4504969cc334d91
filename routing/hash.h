// The hash functions that define placement. Internal to routing/ (used by routing_table.cc, the
// benchmark and the fixed-vector tests); callers use routing_table.h.
//
// EVERY FUNCTION HERE IS PART OF THE PLACEMENT FUNCTION: changing one moves (almost) every object
// in a live cluster, and mixed versions would disagree about owners. The fixed vectors in
// tests/routing/fixed_vectors_test.cc fail on any change.
#pragma once

#include <cstdint>
#include <string_view>

namespace dog::routing::detail {

// SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Keyed BLAKE2b-64 of a node id (key "dog.routing.node.v1"), read big-endian.
uint64_t node_hash(std::string_view node_id);

// Token `j` of a node: its slot is the top slot_bits bits.
constexpr uint64_t token_hash(uint64_t node_hash, uint32_t j) {
  return mix64(node_hash + (static_cast<uint64_t>(j) + 1) * 0x9e3779b97f4a7c15ULL);
}

// 32-bit bijective mixer ("lowbias32", C. Wellons, hash-prospector).
constexpr uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  return x ^ (x >> 16);
}

// The token's identity in the per-key rendezvous race, decorrelated from its slot bits.
constexpr uint32_t token_race_id(uint64_t token) {
  return static_cast<uint32_t>(mix64(token ^ 0x6a09e667f3bcc909ULL));
}

// The score of a token for a routing key; the highest score wins, and on equal scores (equal
// race ids, about once per 2^32 pairs of tokens in a slot) the member whose node id sorts first.
// Member numbers are ranks of node ids, so that relative order is the same in every view that
// contains both members, and so is the ranking.
constexpr uint32_t race_score(uint64_t routing_key, uint32_t race_id) {
  return mix32(static_cast<uint32_t>(routing_key) ^ race_id);
}

}  // namespace dog::routing::detail
