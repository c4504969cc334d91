// Measurement helpers for dog-placement-bench: reproducible keys, single-lookup latency with the
// TSC, and the "placer" interface that lets every candidate algorithm run the same experiments.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dog::bench {

// `count` routing keys: the first 8 bytes (big-endian) of ids whose 24-byte bodies come from
// libsodium's deterministic ChaCha20 stream seeded with `seed`, i.e. exactly what
// new_unique_id() produces, but reproducible.
std::vector<uint64_t> make_keys(size_t count, uint64_t seed);

// Latency percentiles of one call of `lookup`, in nanoseconds, over `samples` calls with
// consecutive keys. Each call is timed on its own with lfence-serialised rdtsc; the cost of an
// empty timed region is subtracted.
struct Latency {
  double p50_ns = 0;
  double p99_ns = 0;
};
Latency measure_latency(const std::vector<uint64_t>& keys, size_t samples,
                        const std::function<uint32_t(uint64_t)>& lookup);

// Milliseconds taken by `fn` (steady clock).
double time_ms(const std::function<void()>& fn);

// A member as the alternatives see it: a name and a weight.
struct Node {
  std::string name;
  double weight = 1.0;
};

// One candidate placement algorithm. build() replaces the node set; lookup() returns an index
// into the vector given to the last build().
class Placer {
 public:
  virtual ~Placer() = default;
  virtual std::string name() const = 0;
  virtual void build(const std::vector<Node>& nodes) = 0;
  virtual uint32_t lookup(uint64_t key) const = 0;
};

// The same experiments for every placer (run on `keys`):
struct Figures {
  std::string name;
  size_t keys = 0;
  double max_over_mean = 0;           // over keys, uniform weights
  double moved_join = 0;              // keys moved / (keys / (N + 1)), one join
  double moved_join_between_old = 0;  // fraction of moved keys that did not go to the new node
  double moved_leave = 0;             // keys moved / (keys / N), one leave
  Latency latency;
  double rebuild_ms = 0;  // median of 3 builds at N
};
Figures evaluate(Placer& placer, const std::vector<Node>& nodes, const std::vector<uint64_t>& keys,
                 size_t latency_samples);

// "node-0000" ... : the benchmark's member names.
std::vector<Node> make_nodes(size_t n);

}  // namespace dog::bench
