// The candidate placement algorithms the benchmark compares (docs/routing.md, "Alternatives").
// All of them hash members with routing::detail::node_hash and keys are routing keys, so the
// figures differ only by algorithm.
#pragma once

#include <memory>

#include "bench_util.h"
#include "routing/routing_table.h"

namespace dog::bench {

// Not a consistent hash: key mod N. Its max/mean is the sampling-noise floor for a key set.
std::unique_ptr<Placer> make_uniform_floor();

// Rendezvous (HRW) over all members per key: O(N) lookup (Thaler & Ravishankar).
std::unique_ptr<Placer> make_rendezvous();

// Consistent-hash ring with `vnodes` random tokens per unit weight; binary-search lookup.
std::unique_ptr<Placer> make_ring(int vnodes);

// Jump consistent hash (Lamping & Veach) over members numbered in node-hash order.
std::unique_ptr<Placer> make_jump();

// Maglev lookup table of prime size `table_size` (Eisenbud et al., NSDI 2016).
std::unique_ptr<Placer> make_maglev(int table_size);

// A slot table of 2^bits entries, each filled by rendezvous over all members.
std::unique_ptr<Placer> make_hrw_slots(int bits);

// The chosen algorithm: routing::RoutingTable with the given parameters.
std::unique_ptr<Placer> make_bucketed(const routing::TableParams& params);

}  // namespace dog::bench
