// RoutingTable: which member owns an object id under one membership view.
//
// Algorithm: "slot-bucketed rendezvous" (docs/routing.md has the measurements behind the choice).
//
//   * The routing key (first 8 bytes of the id) selects one of 2^slot_bits slots by its top bits.
//   * Each member owns round(weight * tokens_per_weight) tokens. Token j of a member is
//     token_hash(node_hash(node_id), j); its top bits name the slot it lands in. With the defaults
//     (2048 slots, 128 tokens per unit of weight) and 1000 members a slot holds about 62 tokens.
//   * The owner of a key is the member of the token with the highest race_score(key, token) among
//     the tokens in the key's slot (rendezvous hashing over a small candidate set). If the slot
//     holds no token, the previous non-empty slot (cyclically) is used instead.
//
// Every member's position in this race depends only on hashes of its own id, so for each key
// there is one fixed ranking of all possible members: first the tokens of the key's slot by score,
// then those of the previous slot, and so on. The owner under a view is the highest-ranked member
// of the view. Consequences:
//   * Determinism: every node that holds the same view computes the same owner, whatever the order
//     of view.members, on every platform (integer hashing only, no floating point after weights
//     are rounded to token counts).
//   * Minimal movement: when a member joins, only keys that it wins move, all to it; when a member
//     leaves, only its keys move. A weight change moves keys only to or from that member.
//   * Balance: a member's share is the sum over its tokens of 1/(tokens in that slot), so shares
//     deviate by about 1/sqrt(tokens per member * tokens per slot): 1.1% at 1000 members.
//   * Cost: a lookup races the ~62 tokens of one slot, 8 at a time (SIMD); the table is about
//     6 bytes per token (770 KiB at 1000 members) and builds in about 1 ms.
//   * successors() walks the same ranking, so replica sets are stable and nested (the first k of
//     successors(k+1) are successors(k)).
//
// Epoch rule: a table is built for one View and every answer carries its epoch. A node serves a
// request only if it owns the id under its own current table and the request was not routed at a
// newer epoch than that table's; see fence() below and docs/routing.md section 4.
//
// Thread safety: a built table is immutable; any number of threads may query it concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "routing/object_id.h"
#include "routing/view.h"

namespace dog::routing {

// Parameters of the placement function. ALL NODES OF A CLUSTER MUST USE THE SAME VALUES, and
// changing them moves nearly every object; the defaults are pinned by fixed-vector tests. Other
// values exist for the benchmark's parameter sweep.
struct TableParams {
  // log2 of the number of slots. Default: 11 (2048 slots).
  uint32_t slot_bits = 11;
  // Tokens of a member of weight 1.0 (6 bytes of table each). Default: 128.
  uint32_t tokens_per_weight = 128;
};

// The most tokens a table accepts (sum over members of their token counts): 64 Mi.
inline constexpr uint64_t kMaxTokens = uint64_t{1} << 26;

// The answer to "who owns this id", valid for the table's epoch.
struct Owner {
  uint32_t member = 0;       // canonical member number: rank of node_id in byte order
  std::string_view node_id;  // points into the table; valid while the table lives
  uint64_t epoch = 0;        // epoch of the view the table was built from
};

struct BuildResult;

class RoutingTable {
 public:
  // Builds the table for `view`. Cost at 1000 members with default parameters: about 1 ms and
  // 770 KiB. Fails (without throwing) on an empty or invalid view. Throws std::invalid_argument
  // only for out-of-range params (slot_bits in [1, 24], tokens_per_weight in [1, 65536]).
  static BuildResult build(const View& view, const TableParams& params = {});

  RoutingTable(RoutingTable&&) noexcept = default;
  RoutingTable& operator=(RoutingTable&&) noexcept = default;
  RoutingTable(const RoutingTable&) = delete;  // large; share it through a pointer instead
  RoutingTable& operator=(const RoutingTable&) = delete;

  uint64_t epoch() const { return epoch_; }
  const TableParams& params() const { return params_; }
  size_t member_count() const { return node_ids_.size(); }
  size_t token_count() const { return members_.size(); }

  // Member `member` (canonical number, < member_count()).
  std::string_view node_id(uint32_t member) const { return node_ids_[member]; }
  double weight(uint32_t member) const { return weights_[member]; }
  // The canonical number of a node, if it is a member of this view.
  std::optional<uint32_t> find(std::string_view node_id) const;

  // The owner of `id`. O(tokens per slot), no allocation, never fails. About 50 ns.
  Owner owner(const ObjectId& id) const noexcept { return owner_of_key(id.routing_key()); }
  Owner owner_of_key(uint64_t routing_key) const noexcept;

  // The first min(k, member_count()) distinct members in the id's ranking, owner first. Stable:
  // a view change only inserts or removes the members that changed. Allocates.
  std::vector<Owner> successors(const ObjectId& id, size_t k) const;

  // Each member's exact share of the routing-key space (sums to 1), indexed by member number.
  std::vector<double> hash_space_shares() const;

 private:
  RoutingTable() = default;
  Owner make_owner(uint32_t member) const noexcept {
    return Owner{member, node_ids_[member], epoch_};
  }

  uint64_t epoch_ = 0;
  TableParams params_;
  uint32_t shift_ = 53;                // 64 - slot_bits
  std::vector<std::string> node_ids_;  // canonical order
  std::vector<double> weights_;        // canonical order
  std::vector<uint32_t> slot_begin_;   // CSR: tokens of slot s are [begin[s], begin[s+1])
  std::vector<uint64_t> ranges_;       // per slot: (first << 32) | count, empty slots resolved
  std::vector<uint32_t> races_;        // per token: race id; 8 zero ids of padding at the end
  std::vector<uint16_t> members_;      // per token: canonical member number
};

// Result of RoutingTable::build(): a table, or why the view was rejected.
struct BuildResult {
  std::optional<RoutingTable> table;
  ViewError error = ViewError::kEmpty;  // meaningful only when !table
  std::string message;
};

// What a node should do with a request routed to it (the epoch rule, as a pure function).
enum class Fence {
  kServe,     // this node owns the id under its current table; serve it
  kNotOwner,  // another member owns it under the current table: reply with the current epoch so
              // the caller refreshes its view and re-resolves
  kBehind,    // the caller decided at a newer epoch than this node knows: this node may already
              // have lost the id, so it must not serve; the caller retries after a short backoff
};

// Decides the fate of a request for `id` that a caller routed at `request_epoch` to the node
// `self_node_id`, given the receiver's `current` table. A request from an older epoch is served
// if ownership did not change for this id (the reply carries current.epoch() so the caller
// catches up); one from a newer epoch never is.
Fence fence(const RoutingTable& current, const ObjectId& id, uint64_t request_epoch,
            std::string_view self_node_id);

std::string_view to_string(Fence fence);

}  // namespace dog::routing
