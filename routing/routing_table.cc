#include "routing/routing_table.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "routing/hash.h"

namespace dog::routing {

namespace {

// The race kernel reads whole blocks of 8 race ids; the array is padded so the last block of the
// last slot stays in bounds. Lanes past the slot's end are masked out.
constexpr size_t kRaceBlock = 8;

using u32x8 = uint32_t __attribute__((vector_size(32)));

// Lane swaps for the reductions below: GCC's __builtin_shuffle, or clang's constant-index
// __builtin_shufflevector (the fuzz build, tests/fuzz/, compiles with clang). Same lanes.
#if defined(__clang__)
#define DOG_SWAP4(v) __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3)
#define DOG_SWAP2(v) __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5)
#define DOG_SWAP1(v) __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6)
#else
#define DOG_SWAP4(v) __builtin_shuffle(v, u32x8{4, 5, 6, 7, 0, 1, 2, 3})
#define DOG_SWAP2(v) __builtin_shuffle(v, u32x8{2, 3, 0, 1, 6, 7, 4, 5})
#define DOG_SWAP1(v) __builtin_shuffle(v, u32x8{1, 0, 3, 2, 5, 4, 7, 6})
#endif

// The position (relative to `races`) of the winner of the race among `count` >= 1 tokens: the
// highest race_score(key, races[i]), and on equal scores the lowest position. Tokens of a slot are
// stored in member-number order, so the lowest position is the lowest member number, which is
// the documented tie-break. Eight lanes at a time with GCC vector extensions: the AVX2 clone runs
// on CPUs that have it, the default clone is plain SSE2. Both compute exactly what the scalar
// definition in hash.h says, so nodes with and without AVX2 agree.
__attribute__((target_clones("avx2", "default"))) uint32_t race_winner(uint32_t key,
                                                                       const uint32_t* races,
                                                                       uint32_t count) noexcept {
  const u32x8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
  const u32x8 k = u32x8{} + key;
  u32x8 best = u32x8{};
  u32x8 best_pos = u32x8{} + UINT32_MAX;
  for (uint32_t i = 0; i < count; i += kRaceBlock) {
    u32x8 x;
    std::memcpy(&x, races + i, sizeof x);
    x ^= k;
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    const u32x8 pos = lane + i;
    // Strictly greater, so each lane keeps its earliest position on equal scores. A lane never
    // records a score of 0; the caller handles that case.
    const auto better = (x > best) & (pos < count);
    best = better ? x : best;
    best_pos = better ? pos : best_pos;
  }
  // Branch-free horizontal reductions: the top score, then the lowest position holding it.
  u32x8 top = best;
  u32x8 other = DOG_SWAP4(top);
  top = top > other ? top : other;
  other = DOG_SWAP2(top);
  top = top > other ? top : other;
  other = DOG_SWAP1(top);
  top = top > other ? top : other;
  u32x8 pos = best == top ? best_pos : u32x8{} + UINT32_MAX;
  other = DOG_SWAP4(pos);
  pos = pos < other ? pos : other;
  other = DOG_SWAP2(pos);
  pos = pos < other ? pos : other;
  other = DOG_SWAP1(pos);
  pos = pos < other ? pos : other;
  const uint32_t winner = pos[0];
  return winner;  // UINT32_MAX if every score was 0
}

// The same race, one token at a time: the definition, and the path for the 2^-32 case above.
uint32_t race_winner_scalar(uint32_t key, const uint32_t* races, uint32_t count) noexcept {
  uint32_t winner = 0;
  uint32_t best = detail::race_score(key, races[0]);
  for (uint32_t i = 1; i < count; ++i) {
    const uint32_t score = detail::race_score(key, races[i]);
    if (score > best) best = score, winner = i;
  }
  return winner;
}

}  // namespace

BuildResult RoutingTable::build(const View& view, const TableParams& params) {
  // Bad parameters are a programming error (they are constants of the deployment), not an
  // expected outcome, so they throw.
  if (params.slot_bits < 1 || params.slot_bits > 24) {
    throw std::invalid_argument("TableParams::slot_bits must be in [1, 24]");
  }
  if (params.tokens_per_weight < 1 || params.tokens_per_weight > 65536) {
    throw std::invalid_argument("TableParams::tokens_per_weight must be in [1, 65536]");
  }
  BuildResult result;
  if (std::optional<ViewProblem> problem = check_view(view)) {
    result.error = problem->error;
    result.message = std::move(problem->message);
    return result;
  }

  const std::vector<uint32_t> order = canonical_order(view);
  const size_t n = order.size();
  RoutingTable t;
  t.epoch_ = view.epoch;
  t.params_ = params;
  t.shift_ = 64 - params.slot_bits;
  t.node_ids_.reserve(n);
  t.weights_.reserve(n);
  std::vector<uint64_t> node_hashes(n);
  std::vector<uint32_t> token_counts(n);
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const Member& m = view.members[order[i]];
    t.node_ids_.push_back(m.node_id);
    t.weights_.push_back(m.weight);
    node_hashes[i] = detail::node_hash(m.node_id);
    // llround is exact and identical on every IEEE-754 platform; weights <= 64 keep it in range.
    token_counts[i] = static_cast<uint32_t>(
        std::max<long long>(1, std::llround(m.weight * params.tokens_per_weight)));
    total += token_counts[i];
  }
  if (total > kMaxTokens) {
    result.error = ViewError::kTooManyTokens;
    result.message = "view needs " + std::to_string(total) + " tokens, the limit is " +
                     std::to_string(kMaxTokens);
    return result;
  }

  // Counting sort of all tokens by slot. Tokens are hashed twice (count, then place) because
  // recomputing a mix64 is cheaper than writing and re-reading 8 bytes per token.
  const size_t slots = size_t{1} << params.slot_bits;
  t.slot_begin_.assign(slots + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    for (uint32_t j = 0; j < token_counts[i]; ++j) {
      ++t.slot_begin_[(detail::token_hash(node_hashes[i], j) >> t.shift_) + 1];
    }
  }
  for (size_t s = 0; s < slots; ++s) t.slot_begin_[s + 1] += t.slot_begin_[s];
  std::vector<uint32_t> cursor(t.slot_begin_.begin(), t.slot_begin_.end() - 1);
  t.races_.assign(total + kRaceBlock, 0);
  t.members_.resize(total);
  for (size_t i = 0; i < n; ++i) {
    for (uint32_t j = 0; j < token_counts[i]; ++j) {
      const uint64_t token = detail::token_hash(node_hashes[i], j);
      const uint32_t pos = cursor[token >> t.shift_]++;
      t.races_[pos] = detail::token_race_id(token);
      t.members_[pos] = static_cast<uint16_t>(i);
    }
  }

  // Resolve empty slots to the previous non-empty slot, cyclically. There is at least one token.
  size_t prev = slots - 1;
  while (t.slot_begin_[prev + 1] == t.slot_begin_[prev]) --prev;
  t.ranges_.resize(slots);
  for (size_t s = 0; s < slots; ++s) {
    if (t.slot_begin_[s + 1] != t.slot_begin_[s]) prev = s;
    const uint64_t first = t.slot_begin_[prev];
    const uint64_t count = t.slot_begin_[prev + 1] - first;
    t.ranges_[s] = (first << 32) | count;
  }
  result.table.emplace(std::move(t));
  return result;
}

std::optional<uint32_t> RoutingTable::find(std::string_view node_id) const {
  auto it = std::lower_bound(node_ids_.begin(), node_ids_.end(), node_id,
                             [](const std::string& a, std::string_view b) { return a < b; });
  if (it == node_ids_.end() || *it != node_id) return std::nullopt;
  return static_cast<uint32_t>(it - node_ids_.begin());
}

Owner RoutingTable::owner_of_key(uint64_t routing_key) const noexcept {
  const uint64_t range = ranges_[routing_key >> shift_];
  const uint32_t* races = races_.data() + (range >> 32);
  const uint32_t count = static_cast<uint32_t>(range);
  // The race uses the low 32 bits of the key; the slot was chosen by the top bits.
  const uint32_t key = static_cast<uint32_t>(routing_key);
  // The winner's member number is read right after the race; start fetching the slot's member
  // numbers now so that miss overlaps the race instead of following it.
  const uint16_t* members = members_.data() + (range >> 32);
  for (uint32_t i = 0; i < count; i += 32) __builtin_prefetch(members + i);
  uint32_t winner = race_winner(key, races, count);
  if (winner == UINT32_MAX) winner = race_winner_scalar(key, races, count);
  return make_owner(members[winner]);
}

std::vector<Owner> RoutingTable::successors(const ObjectId& id, size_t k) const {
  const uint64_t key = id.routing_key();
  k = std::min(k, member_count());
  std::vector<Owner> out;
  out.reserve(k);
  std::vector<bool> seen(member_count(), false);
  std::vector<std::pair<uint32_t, uint16_t>> race;
  const size_t slots = size_t{1} << params_.slot_bits;
  const size_t start = key >> shift_;
  for (size_t step = 0; step < slots && out.size() < k; ++step) {
    const size_t s = (start + slots - step) & (slots - 1);
    race.clear();
    for (uint32_t i = slot_begin_[s]; i < slot_begin_[s + 1]; ++i) {
      race.emplace_back(detail::race_score(key, races_[i]), members_[i]);
    }
    // Same order as owner_of_key(): highest score first, then the lower member number.
    std::sort(race.begin(), race.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    for (const auto& [score, member] : race) {
      if (seen[member]) continue;
      seen[member] = true;
      out.push_back(make_owner(member));
      if (out.size() == k) break;
    }
  }
  return out;
}

std::vector<double> RoutingTable::hash_space_shares() const {
  std::vector<double> shares(member_count(), 0.0);
  const double slot_share = 1.0 / static_cast<double>(ranges_.size());
  for (uint64_t range : ranges_) {
    const uint32_t first = static_cast<uint32_t>(range >> 32);
    const uint32_t count = static_cast<uint32_t>(range);
    for (uint32_t i = first; i < first + count; ++i) {
      shares[members_[i]] += slot_share / count;
    }
  }
  return shares;
}

Fence fence(const RoutingTable& current, const ObjectId& id, uint64_t request_epoch,
            std::string_view self_node_id) {
  if (request_epoch > current.epoch()) return Fence::kBehind;
  return current.owner(id).node_id == self_node_id ? Fence::kServe : Fence::kNotOwner;
}

std::string_view to_string(Fence fence) {
  switch (fence) {
    case Fence::kServe:
      return "serve";
    case Fence::kNotOwner:
      return "not_owner";
    case Fence::kBehind:
      return "behind";
  }
  return "unknown";
}

}  // namespace dog::routing
