// dog-placement-bench: the placement function against the issue-5 targets, and the alternatives
// it was chosen over. Progress and tables go to stderr; the last stdout line is one JSON object.
//
//   dog-placement-bench [--keys N] [--alt-keys N] [--trials T] [--slot-bits B]
//                       [--tokens-per-weight V] [--no-alternatives]
//
// --slot-bits and --tokens-per-weight replace the production TableParams for the chosen
// algorithm (to explore the trade-off; the production defaults are what the JSON reports).
//
// Defaults: 2^24 keys for the chosen algorithm, 2^22 for the O(1)/O(log n) alternatives, 2^19
// for O(N) rendezvous; 8 join and 8 leave trials; about 40 s on one core.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "alternatives.h"
#include "bench_util.h"
#include "routing/placement.h"
#include "routing/routing_table.h"

namespace dog::bench {
namespace {

using nlohmann::json;
using routing::RoutingTable;
using routing::View;

struct Options {
  size_t keys = size_t{1} << 24;
  size_t alt_keys = size_t{1} << 22;
  int trials = 8;
  bool alternatives = true;
  dog::routing::TableParams params;  // the chosen algorithm's parameters (default: production)
};

RoutingTable build_or_die(const View& view, const routing::TableParams& params = {}) {
  routing::BuildResult built = RoutingTable::build(view, params);
  if (!built.table) {
    std::fprintf(stderr, "build failed: %s\n", built.message.c_str());
    std::exit(1);
  }
  return std::move(*built.table);
}

View make_view(size_t n, uint64_t epoch) {
  View view;
  view.epoch = epoch;
  for (const Node& node : make_nodes(n)) view.members.push_back({node.name, 1.0});
  return view;
}

double max_over_mean(const std::vector<double>& v) {
  double sum = 0, mx = 0;
  for (double x : v) sum += x, mx = std::max(mx, x);
  return mx / (sum / double(v.size()));
}

// Keys moved between `base` (owners of `keys` under `from`) and the table `to`, relative to
// `ideal_keys`; also counts moves that did not involve `changed` (a member of only one side).
struct Move {
  double ratio = 0;
  size_t between_others = 0;
};
Move count_moves(const RoutingTable& from, const std::vector<uint16_t>& base,
                 const RoutingTable& to, const std::vector<uint64_t>& keys,
                 std::string_view changed, double ideal_keys) {
  // Member numbers are ranks of node ids, so they shift when a member joins or leaves; compare
  // through node ids (one remap table per side).
  std::vector<int32_t> remap(from.member_count(), -1);
  for (uint32_t m = 0; m < from.member_count(); ++m) {
    if (auto found = to.find(from.node_id(m))) remap[m] = static_cast<int32_t>(*found);
  }
  const std::optional<uint32_t> changed_in_to = to.find(changed);
  const std::optional<uint32_t> changed_in_from = from.find(changed);
  Move move;
  size_t moved = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t now = to.owner_of_key(keys[i]).member;
    if (static_cast<int32_t>(now) == remap[base[i]]) continue;
    ++moved;
    const bool to_changed = changed_in_to && now == *changed_in_to;
    const bool from_changed = changed_in_from && base[i] == *changed_in_from;
    if (!to_changed && !from_changed) ++move.between_others;
  }
  move.ratio = double(moved) / ideal_keys;
  return move;
}

json run_chosen(const Options& opt, const std::vector<uint64_t>& keys) {
  const size_t n = 1000;
  const View view = make_view(n, 1);
  const RoutingTable table = build_or_die(view, opt.params);
  json out;

  std::fprintf(stderr, "[chosen] balance over %zu keys\n", keys.size());
  std::vector<uint16_t> base(keys.size());
  std::vector<double> counts(n, 0);
  for (size_t i = 0; i < keys.size(); ++i) {
    base[i] = static_cast<uint16_t>(table.owner_of_key(keys[i]).member);
    counts[base[i]] += 1;
  }
  out["max_over_mean_share"] = max_over_mean(counts);
  out["max_over_mean_hash_space"] = max_over_mean(table.hash_space_shares());
  out["min_over_mean_share"] =
      *std::min_element(counts.begin(), counts.end()) / (double(keys.size()) / n);

  std::mt19937_64 rng(7);
  double join_sum = 0, join_worst = 0, leave_sum = 0, leave_worst = 0;
  size_t between = 0;
  for (int t = 0; t < opt.trials; ++t) {
    View joined = view;
    joined.epoch = 2;
    const std::string name = "joiner-" + std::to_string(t);
    joined.members.push_back({name, 1.0});
    const RoutingTable after = build_or_die(joined, opt.params);
    const Move m = count_moves(table, base, after, keys, name, double(keys.size()) / (n + 1));
    std::fprintf(stderr, "[chosen] join %s: moved/ideal %.4f, between old members %zu\n",
                 name.c_str(), m.ratio, m.between_others);
    join_sum += m.ratio, join_worst = std::max(join_worst, m.ratio), between += m.between_others;
  }
  for (int t = 0; t < opt.trials; ++t) {
    View left = view;
    left.epoch = 2;
    const size_t gone = rng() % n;
    const std::string name = left.members[gone].node_id;
    left.members.erase(left.members.begin() + gone);
    const RoutingTable after = build_or_die(left, opt.params);
    const Move m = count_moves(table, base, after, keys, name, double(keys.size()) / n);
    std::fprintf(stderr, "[chosen] leave %s: moved/ideal %.4f, between others %zu\n", name.c_str(),
                 m.ratio, m.between_others);
    leave_sum += m.ratio, leave_worst = std::max(leave_worst, m.ratio), between += m.between_others;
  }
  out["moved_on_join_vs_ideal"] = join_sum / opt.trials;
  out["moved_on_join_vs_ideal_worst"] = join_worst;
  out["moved_on_leave_vs_ideal"] = leave_sum / opt.trials;
  out["moved_on_leave_vs_ideal_worst"] = leave_worst;
  out["moved_between_unchanged_members"] = between;
  out["movement_trials"] = opt.trials;

  std::fprintf(stderr, "[chosen] weighted view (weights 1, 2, 4)\n");
  View weighted = view;
  const double class_weights[3] = {1.0, 2.0, 4.0};
  for (size_t i = 0; i < n; ++i) weighted.members[i].weight = class_weights[i % 3];
  const RoutingTable wtable = build_or_die(weighted, opt.params);
  std::vector<double> wcounts(n, 0);
  for (uint64_t k : keys) wcounts[wtable.owner_of_key(k).member] += 1;
  const std::vector<double> wshares = wtable.hash_space_shares();
  double total_weight = 0;
  for (const auto& m : weighted.members) total_weight += m.weight;
  double class_share[3] = {0, 0, 0}, class_expected[3] = {0, 0, 0}, node_err = 0;
  for (uint32_t m = 0; m < n; ++m) {
    const double w = wtable.weight(m);
    const int c = w == 1.0 ? 0 : (w == 2.0 ? 1 : 2);
    class_share[c] += wcounts[m] / double(keys.size());
    class_expected[c] += w / total_weight;
    node_err = std::max(node_err, std::fabs(wshares[m] / (w / total_weight) - 1));
  }
  double class_err = 0;
  for (int c = 0; c < 3; ++c) {
    class_err = std::max(class_err, std::fabs(class_share[c] / class_expected[c] - 1));
  }
  out["weighted_share_error"] = class_err;
  out["weighted_share_error_per_node_max"] = node_err;

  std::fprintf(stderr, "[chosen] lookup latency\n");
  const Latency lat =
      measure_latency(keys, 1'000'000, [&](uint64_t k) { return table.owner_of_key(k).member; });
  out["lookup_ns_p50"] = lat.p50_ns;
  out["lookup_ns_p99"] = lat.p99_ns;

  std::fprintf(stderr, "[chosen] rebuild\n");
  std::vector<double> builds;
  for (int i = 0; i < 9; ++i) {
    builds.push_back(time_ms([&] { (void)build_or_die(i % 2 ? weighted : view, opt.params); }));
  }
  std::sort(builds.begin(), builds.end());
  out["rebuild_ms"] = builds[builds.size() / 2];
  out["rebuild_ms_max"] = builds.back();

  std::fprintf(stderr, "[chosen] power-of-two-choices placement of 100000 replicas\n");
  const routing::IdNamespace ns("bench-replicas");
  for (int choices : {1, 2}) {
    std::mt19937_64 gen(11);
    const routing::EntropyFn entropy = [&](std::span<uint8_t> bytes) {
      for (uint8_t& b : bytes) b = static_cast<uint8_t>(gen());
    };
    std::vector<double> load(n, 0);
    const routing::LoadFn load_fn = [&](const routing::Owner& o) { return load[o.member]; };
    for (int r = 0; r < 100'000; ++r) {
      const routing::ObjectId id = routing::place_new(ns, table, load_fn, entropy, choices);
      load[table.owner(id).member] += 1;
    }
    out[choices == 2 ? "p2c_max_over_mean_load" : "one_choice_max_over_mean_load"] =
        max_over_mean(load);
  }
  return out;
}

json figures_json(const Figures& f) {
  return json{{"name", f.name},
              {"keys", f.keys},
              {"max_over_mean_share", f.max_over_mean},
              {"moved_on_join_vs_ideal", f.moved_join},
              {"moved_on_join_between_old_fraction", f.moved_join_between_old},
              {"moved_on_leave_vs_ideal", f.moved_leave},
              {"lookup_ns_p50", f.latency.p50_ns},
              {"lookup_ns_p99", f.latency.p99_ns},
              {"rebuild_ms", f.rebuild_ms}};
}

json run_alternatives(const Options& opt) {
  const std::vector<Node> nodes = make_nodes(1000);
  const std::vector<uint64_t> keys = make_keys(opt.alt_keys, 2);
  const std::vector<uint64_t> few_keys(keys.begin(), keys.begin() + (size_t{1} << 19));
  json rows = json::array();
  std::fprintf(stderr, "\n%-58s %9s %8s %8s %8s %8s %8s %9s\n", "algorithm (N=1000)", "keys",
               "max/mean", "join", "leave", "p50 ns", "p99 ns", "build ms");
  auto report = [&](std::unique_ptr<Placer> placer, const std::vector<uint64_t>& k,
                    size_t samples) {
    const Figures f = evaluate(*placer, nodes, k, samples);
    std::fprintf(stderr, "%-58s %9zu %8.3f %8.3f %8.3f %8.1f %8.1f %9.2f\n", f.name.c_str(), f.keys,
                 f.max_over_mean, f.moved_join, f.moved_leave, f.latency.p50_ns, f.latency.p99_ns,
                 f.rebuild_ms);
    rows.push_back(figures_json(f));
  };
  // Not a consistent hash: the balance a perfectly uniform placement shows on the same keys,
  // i.e. the sampling-noise floor of the max/mean column (about 1 + 3.2 * sqrt(N / keys)).
  report(make_uniform_floor(), keys, 200'000);
  report(make_uniform_floor(), few_keys, 20'000);
  report(make_rendezvous(), few_keys, 20'000);
  report(make_ring(256), keys, 200'000);
  report(make_ring(1024), keys, 200'000);
  report(make_jump(), keys, 200'000);
  report(make_maglev(65537), keys, 200'000);
  report(make_hrw_slots(16), keys, 200'000);
  report(make_bucketed(opt.params), keys, 200'000);  // the chosen parameters
  report(make_bucketed({12, 128}), keys, 200'000);
  report(make_bucketed({12, 256}), keys, 200'000);
  report(make_bucketed({13, 256}), keys, 200'000);
  report(make_bucketed({15, 512}), keys, 200'000);
  report(make_bucketed({16, 1024}), keys, 200'000);
  return rows;
}

}  // namespace
}  // namespace dog::bench

int main(int argc, char** argv) {
  using namespace dog::bench;
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] { return i + 1 < argc ? std::stoull(argv[++i]) : 0ULL; };
    if (arg == "--keys") {
      opt.keys = value();
    } else if (arg == "--alt-keys") {
      opt.alt_keys = value();
    } else if (arg == "--trials") {
      opt.trials = static_cast<int>(value());
    } else if (arg == "--slot-bits") {
      opt.params.slot_bits = static_cast<uint32_t>(value());
    } else if (arg == "--tokens-per-weight") {
      opt.params.tokens_per_weight = static_cast<uint32_t>(value());
    } else if (arg == "--no-alternatives") {
      opt.alternatives = false;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--keys N] [--alt-keys N] [--trials T] [--slot-bits B]\n"
                   "          [--tokens-per-weight V] [--no-alternatives]\n",
                   argv[0]);
      return 2;
    }
  }
  if (opt.keys < 1000 || opt.alt_keys < (size_t{1} << 19) || opt.trials < 1) {
    std::fprintf(stderr, "need --keys >= 1000, --alt-keys >= 524288, --trials >= 1\n");
    return 2;
  }
  std::fprintf(stderr, "[keys] generating %zu routing keys\n", opt.keys);
  const std::vector<uint64_t> keys = make_keys(opt.keys, 1);
  nlohmann::json result = {{"nodes", 1000}, {"keys", opt.keys}};
  const dog::routing::TableParams& params = opt.params;
  result["algorithm"] = "slot-bucketed rendezvous";
  result["slot_bits"] = params.slot_bits;
  result["tokens_per_weight"] = params.tokens_per_weight;
  result.update(run_chosen(opt, keys));
  if (opt.alternatives) result["alternatives"] = run_alternatives(opt);
  std::cout << result.dump() << std::endl;
  return 0;
}
