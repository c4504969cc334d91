#include "scenarios.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <unordered_map>
#include <vector>

#include "membership/sim/cluster.h"

namespace dog::membership::bench {

namespace {

using sim::Cluster;
using sim::ClusterOptions;
using Clock = std::chrono::steady_clock;

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const double rank = p * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}
double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? std::nan("") : s / static_cast<double>(v.size());
}
double round3(double x) { return std::round(x * 1000) / 1000; }

uint32_t index_of(const std::string& name) { return static_cast<uint32_t>(std::stoul(name.substr(1))); }

ClusterOptions base_options(const ScenarioArgs& a) {
  ClusterOptions o;
  o.nodes = a.nodes;
  o.seed = a.seed;
  o.config = Config::lan();
  o.config.lifeguard = a.lifeguard;
  if (a.retransmit_mult > 0) o.config.retransmit_mult = a.retransmit_mult;
  if (a.gossip_nodes > 0) o.config.gossip_nodes = a.gossip_nodes;
  if (a.indirect_checks > 0) o.config.indirect_checks = a.indirect_checks;
  if (a.suspicion_mult > 0) o.config.suspicion_mult = a.suspicion_mult;
  if (a.nack_fraction > 0) o.config.nack_fraction = a.nack_fraction;
  o.link.loss = a.loss;
  if (a.jitter_us >= 0) o.link.jitter = Duration(a.jitter_us);
  return o;
}

void progress(const char* what, int64_t period, int64_t total, Clock::time_point t0) {
  std::cerr << "[" << what << "] period " << period << "/" << total << "  wall "
            << std::chrono::duration<double>(Clock::now() - t0).count() << " s\n";
}

// --- crash -------------------------------------------------------------------------------------
// One member crashes (silent in and out); measure first suspicion anywhere and the time until
// >= 99.9 % of survivors see it dead. Repeated `trials` times on the same cluster.
bool run_crash(const ScenarioArgs& a, nlohmann::json& out) {
  ClusterOptions o = base_options(a);
  Cluster c(o);
  const Duration T = o.config.probe_interval;
  const int trials = a.trials > 0 ? a.trials : 100;
  const int64_t max_wait = a.periods > 0 ? a.periods : 60;
  const auto t0 = Clock::now();

  int64_t victim = -1;
  TimePoint crash_at{0};
  int64_t first_suspect = kNever;
  size_t dead_seen = 0;
  uint64_t false_deaths = 0;
  std::vector<bool> crashed(a.nodes, false);
  c.set_observer([&](uint32_t observer, const Event& e) {
    const uint32_t subject = index_of(e.member->name);
    if (e.kind == EventKind::kDead && e.local_origin && !crashed[subject]) ++false_deaths;
    if (static_cast<int64_t>(subject) != victim) return;
    const int64_t dt = (c.net().now() - crash_at).count();
    if (e.kind == EventKind::kSuspect && first_suspect == kNever) first_suspect = dt;
    if (e.kind == EventKind::kDead) ++dead_seen;
  });
  c.start_all();
  c.run_for(5 * T);

  Rng pick(a.seed ^ 0xc4a5);
  std::vector<double> detect, dead_all;
  size_t survivors = a.nodes;
  for (int t = 0; t < trials; ++t) {
    uint32_t v;
    do v = static_cast<uint32_t>(pick.uniform(a.nodes)); while (crashed[v]);
    c.run_for(Duration(pick.uniform(T.count())));  // random phase relative to probe ticks
    victim = v;
    crashed[v] = true;
    crash_at = c.net().now();
    first_suspect = kNever;
    dead_seen = 0;
    c.net().crash(v);
    --survivors;
    const size_t need = static_cast<size_t>(std::ceil(0.999 * static_cast<double>(survivors)));
    int64_t done = kNever;
    const Duration step = T / 20;
    for (int64_t i = 0; i < max_wait * 20 && done == kNever; ++i) {
      c.run_for(step);
      if (dead_seen >= need) done = (c.net().now() - crash_at).count();
    }
    if (first_suspect != kNever) detect.push_back(static_cast<double>(first_suspect) / T.count());
    dead_all.push_back(done == kNever ? static_cast<double>(max_wait)
                                      : static_cast<double>(done) / T.count());
    victim = -1;
    c.run_for(2 * T);
    if ((t + 1) % 10 == 0) progress("crash", t + 1, trials, t0);
  }
  out["trials"] = trials;
  out["detect_p99_periods"] = round3(percentile(detect, 0.99));
  out["detect_mean_periods"] = round3(mean(detect));
  out["dead_all_p99_periods"] = round3(percentile(dead_all, 0.99));
  out["dead_all_median_periods"] = round3(percentile(dead_all, 0.5));
  out["dead_all_max_periods"] = round3(percentile(dead_all, 1.0));
  out["false_deaths"] = false_deaths;
  return true;
}

// --- steady ------------------------------------------------------------------------------------
bool run_steady(const ScenarioArgs& a, nlohmann::json& out) {
  ClusterOptions o = base_options(a);
  Cluster c(o);
  const Duration T = o.config.probe_interval;
  const int64_t periods = a.periods > 0 ? a.periods : 3600;
  const auto t0 = Clock::now();
  uint64_t false_deaths = 0, false_suspicions = 0, dead_observed = 0;
  std::vector<uint64_t> counted_inc(a.nodes, 0);
  c.set_observer([&](uint32_t, const Event& e) {
    if (e.kind == EventKind::kDead) {
      ++dead_observed;
      const uint32_t subject = index_of(e.member->name);
      if (e.local_origin && counted_inc[subject] != e.member->incarnation) {
        counted_inc[subject] = e.member->incarnation;
        ++false_deaths;  // once per (member, incarnation)
      }
    }
    if (e.kind == EventKind::kSuspect && e.local_origin) ++false_suspicions;
  });
  c.start_all();
  c.run_for(10 * T);  // warm-up: random phases settle, first push/pull digests go out
  const size_t n = a.nodes;
  std::vector<uint64_t> last(n), start(n);
  auto tx = [&](uint32_t i) {
    const auto& k = c.net().counters(i);
    return k.datagram_bytes_sent + k.stream_bytes_sent;
  };
  for (uint32_t i = 0; i < n; ++i) last[i] = start[i] = tx(i);
  std::vector<uint64_t> hist(1 << 16, 0);  // per-member 1 s window rates, 1 B/s buckets
  const double secs_per_period = std::chrono::duration<double>(T).count();
  for (int64_t p = 0; p < periods; ++p) {
    c.run_for(T);
    for (uint32_t i = 0; i < n; ++i) {
      const uint64_t now = tx(i);
      const uint64_t rate = static_cast<uint64_t>(static_cast<double>(now - last[i]) / secs_per_period);
      ++hist[std::min<uint64_t>(rate, hist.size() - 1)];
      last[i] = now;
    }
    if ((p + 1) % 300 == 0) progress("steady", p + 1, periods, t0);
  }
  std::vector<double> per_member;
  uint64_t max_dgram = 0, mtu_violations = 0, stream_bytes = 0, dgram_bytes = 0;
  for (uint32_t i = 0; i < n; ++i) {
    per_member.push_back(static_cast<double>(tx(i) - start[i]) / (periods * secs_per_period));
    const auto& k = c.net().counters(i);
    max_dgram = std::max(max_dgram, k.max_datagram_bytes);
    mtu_violations += k.mtu_violations;
    stream_bytes += k.stream_bytes_sent;
    dgram_bytes += k.datagram_bytes_sent;
  }
  uint64_t total = 0, acc = 0;
  for (uint64_t h : hist) total += h;
  uint64_t p99 = 0;
  for (size_t b = 0; b < hist.size(); ++b) {
    acc += hist[b];
    if (acc * 100 >= total * 99) {
      p99 = b;
      break;
    }
  }
  uint64_t refutations = 0, inconclusive = 0, quiet = 0, nacks = 0;
  for (uint32_t i = 0; i < n; ++i) {
    refutations += c.node(i).stats().refutations;
    inconclusive += c.node(i).stats().probes_inconclusive;
    quiet += c.node(i).stats().quiet_suspicions;
    nacks += c.node(i).stats().nacks_received;
  }
  out["probes_inconclusive"] = inconclusive;
  out["quiet_suspicions"] = quiet;
  out["nacks_received"] = nacks;
  out["false_deaths"] = false_deaths;
  out["member_periods"] = static_cast<uint64_t>(n) * static_cast<uint64_t>(periods);
  out["false_suspicions"] = false_suspicions;
  out["refutations"] = refutations;
  out["dead_events_observed"] = dead_observed;
  out["tx_bytes_per_member_per_s_mean"] = round3(mean(per_member));
  out["tx_bytes_per_member_per_s_p99"] = p99;
  out["tx_bytes_per_member_per_s_p99_of_member_means"] = round3(percentile(per_member, 0.99));
  out["stream_share"] = round3(static_cast<double>(stream_bytes) / static_cast<double>(std::max<uint64_t>(1, stream_bytes + dgram_bytes)));
  out["max_datagram_bytes"] = max_dgram;
  out["mtu_violations"] = mtu_violations;
  out["sim_events"] = c.net().events_processed();
  return true;
}

// --- slow --------------------------------------------------------------------------------------
// 5 % of members are "slow": each repeatedly pauses for U[1, 5] s after an exponential gap
// (mean 10 s). Same seed and schedule with Lifeguard on and off; count deaths that members
// declare (local origin) about healthy (never-paused) members.
struct SlowResult {
  uint64_t healthy_false_deaths = 0;
  uint64_t healthy_deaths_at_healthy = 0;  // declared by a healthy observer (what failover acts on)
  uint64_t probes_inconclusive = 0;
  uint64_t quiet_suspicions = 0;
  uint64_t slow_deaths = 0;
  uint64_t false_suspicions_healthy = 0;
};

SlowResult run_slow_once(const ScenarioArgs& a, bool lifeguard, int64_t periods, const char* tag) {
  ScenarioArgs b = a;
  b.lifeguard = lifeguard;
  ClusterOptions o = base_options(b);
  Cluster c(o);
  const Duration T = o.config.probe_interval;
  const auto t0 = Clock::now();
  std::vector<bool> slow(a.nodes, false);
  Rng pick(a.seed ^ 0x51077);
  const size_t n_slow = std::max<size_t>(1, a.nodes / 20);
  for (size_t k = 0; k < n_slow;) {
    uint32_t v = static_cast<uint32_t>(pick.uniform(a.nodes));
    if (!slow[v]) slow[v] = true, ++k;
  }
  SlowResult r;
  // A false death is counted once per (member, incarnation), however many members time out.
  std::vector<uint64_t> counted_inc(a.nodes, 0), counted_inc_healthy(a.nodes, 0);
  c.set_observer([&](uint32_t obs, const Event& e) {
    const uint32_t subject = index_of(e.member->name);
    if (e.kind == EventKind::kDead && !slow[obs] && !slow[subject] &&
        counted_inc_healthy[subject] != e.member->incarnation) {
      counted_inc_healthy[subject] = e.member->incarnation;
      ++r.healthy_deaths_at_healthy;
    }
    if (e.kind == EventKind::kDead && e.local_origin && counted_inc[subject] != e.member->incarnation) {
      counted_inc[subject] = e.member->incarnation;
      if (slow[subject]) ++r.slow_deaths; else ++r.healthy_false_deaths;
    }
    if (e.kind == EventKind::kSuspect && e.local_origin && !slow[subject]) ++r.false_suspicions_healthy;
  });
  c.start_all();
  c.run_for(5 * T);
  // Pre-draw each slow member's next pause start.
  std::vector<TimePoint> next_pause(a.nodes, TimePoint::max());
  auto gap = [&]() { return Duration(static_cast<int64_t>(-std::log(1 - pick.unit()) * 10e6)); };
  for (uint32_t i = 0; i < a.nodes; ++i)
    if (slow[i]) next_pause[i] = c.net().now() + gap();
  const Duration step = T / 10;
  for (int64_t s = 0; s < periods * 10; ++s) {
    for (uint32_t i = 0; i < a.nodes; ++i) {
      if (next_pause[i] > c.net().now()) continue;
      const int64_t lo = a.pause_min_ms * 1000, span = std::max<int64_t>(1, (a.pause_max_ms - a.pause_min_ms) * 1000);
      const Duration len = Duration(lo + static_cast<int64_t>(pick.uniform(static_cast<uint64_t>(span))));
      c.net().pause(i, len);
      next_pause[i] = c.net().now() + len + gap();
    }
    c.run_for(step);
    if ((s + 1) % 3000 == 0) progress(tag, (s + 1) / 10, periods, t0);
  }
  for (uint32_t i = 0; i < a.nodes; ++i) {
    r.probes_inconclusive += c.node(i).stats().probes_inconclusive;
    r.quiet_suspicions += c.node(i).stats().quiet_suspicions;
  }
  return r;
}

bool run_slow(const ScenarioArgs& a, nlohmann::json& out) {
  const int64_t periods = a.periods > 0 ? a.periods : 600;
  SlowResult lg = run_slow_once(a, true, periods, "slow/lifeguard");
  SlowResult no = run_slow_once(a, false, periods, "slow/no-lifeguard");
  out["slow_members"] = std::max<size_t>(1, a.nodes / 20);
  out["false_deaths_lifeguard"] = lg.healthy_false_deaths;
  out["false_deaths_no_lifeguard"] = no.healthy_false_deaths;
  out["false_death_reduction"] =
      round3(static_cast<double>(no.healthy_false_deaths) / std::max<double>(1, lg.healthy_false_deaths));
  out["false_suspicions_healthy_lifeguard"] = lg.false_suspicions_healthy;
  out["false_suspicions_healthy_no_lifeguard"] = no.false_suspicions_healthy;
  out["slow_member_deaths_lifeguard"] = lg.slow_deaths;
  out["slow_member_deaths_no_lifeguard"] = no.slow_deaths;
  out["healthy_deaths_at_healthy_lifeguard"] = lg.healthy_deaths_at_healthy;
  out["probes_inconclusive_lifeguard"] = lg.probes_inconclusive;
  out["quiet_suspicions_lifeguard"] = lg.quiet_suspicions;
  out["pause_ms"] = {a.pause_min_ms, a.pause_max_ms};
  return true;
}

// --- dissemination -----------------------------------------------------------------------------
// One member changes its metadata (a system alive update with a new incarnation); measure the
// time until 100 % of the other members have applied it. Repeated from different origins.
bool run_dissemination(const ScenarioArgs& a, nlohmann::json& out) {
  ClusterOptions o = base_options(a);
  Cluster c(o);
  const Duration T = o.config.probe_interval;
  const int trials = a.trials > 0 ? a.trials : 30;
  const auto t0 = Clock::now();
  int64_t origin = -1;
  uint64_t want_inc = 0;
  size_t reached = 0;
  c.set_observer([&](uint32_t observer, const Event& e) {
    if (origin < 0 || static_cast<int64_t>(observer) == origin) return;
    if (e.kind == EventKind::kUpdate && e.member->name == Cluster::name_of(static_cast<uint32_t>(origin)) &&
        e.member->incarnation == want_inc)
      ++reached;
  });
  c.start_all();
  c.run_for(5 * T);
  Rng pick(a.seed ^ 0xd155);
  std::vector<double> full;
  for (int t = 0; t < trials; ++t) {
    c.run_for(Duration(pick.uniform(T.count())));
    origin = static_cast<int64_t>(pick.uniform(a.nodes));
    reached = 0;
    Swim& s = c.node(static_cast<uint32_t>(origin));
    want_inc = s.incarnation() + 1;
    Meta m = s.member(s.name())->meta;
    m.build_version = "v" + std::to_string(t);
    s.set_meta(m);
    const TimePoint start = c.net().now();
    int64_t done = kNever;
    for (int i = 0; i < 60 * 20 && done == kNever; ++i) {
      c.run_for(T / 20);
      if (reached >= a.nodes - 1) done = (c.net().now() - start).count();
    }
    full.push_back(done == kNever ? 60.0 : static_cast<double>(done) / T.count());
    origin = -1;
    c.run_for(3 * T);
    if ((t + 1) % 10 == 0) progress("dissemination", t + 1, trials, t0);
  }
  out["trials"] = trials;
  out["dissem_p99_periods"] = round3(percentile(full, 0.99));
  out["dissem_median_periods"] = round3(percentile(full, 0.5));
  return true;
}

// --- bootstrap ---------------------------------------------------------------------------------
bool run_bootstrap(const ScenarioArgs& a, nlohmann::json& out) {
  ClusterOptions o = base_options(a);
  o.preinstalled = false;
  Cluster c(o);
  const Duration T = o.config.probe_interval;
  const int64_t periods = a.periods > 0 ? a.periods : 120;
  const auto t0 = Clock::now();
  uint64_t false_suspicions = 0;
  c.set_observer([&](uint32_t, const Event& e) {
    if (e.kind == EventKind::kSuspect && e.local_origin) ++false_suspicions;
  });
  c.start_all();
  c.join_all();
  int64_t done = kNever;
  size_t best = 0;
  for (int64_t i = 0; i < periods * 10 && done == kNever; ++i) {
    c.run_for(T / 10);
    best = c.count_seeing(a.nodes);
    if (best == a.nodes) done = c.net().now().count();
    if ((i + 1) % 100 == 0) {
      progress("bootstrap", (i + 1) / 10, periods, t0);
      std::cerr << "  members seeing all " << a.nodes << ": " << best << "\n";
    }
  }
  out["converge_periods"] = done == kNever ? -1.0 : round3(static_cast<double>(done) / T.count());
  out["members_seeing_all"] = best;
  out["false_suspicions"] = false_suspicions;
  uint64_t max_dgram = 0, mtu_violations = 0;
  for (uint32_t i = 0; i < a.nodes; ++i) {
    max_dgram = std::max(max_dgram, c.net().counters(i).max_datagram_bytes);
    mtu_violations += c.net().counters(i).mtu_violations;
  }
  out["max_datagram_bytes"] = max_dgram;
  out["mtu_violations"] = mtu_violations;
  return true;
}

}  // namespace

bool run_scenario(const ScenarioArgs& a, nlohmann::json& out) {
  out["scenario"] = a.scenario;
  out["nodes"] = a.nodes;
  out["seed"] = a.seed;
  out["loss"] = a.loss;
  out["encryption"] = "xchacha20poly1305";
  if (a.retransmit_mult > 0) out["retransmit_mult"] = a.retransmit_mult;
  if (a.gossip_nodes > 0) out["gossip_nodes"] = a.gossip_nodes;
  if (a.indirect_checks > 0) out["indirect_checks"] = a.indirect_checks;
  if (a.suspicion_mult > 0) out["suspicion_mult"] = a.suspicion_mult;
  if (a.nack_fraction > 0) out["nack_fraction"] = a.nack_fraction;
  if (a.jitter_us >= 0) out["jitter_us"] = a.jitter_us;
  if (a.scenario == "crash") return run_crash(a, out);
  if (a.scenario == "steady") return run_steady(a, out);
  if (a.scenario == "slow") return run_slow(a, out);
  if (a.scenario == "dissemination") return run_dissemination(a, out);
  if (a.scenario == "bootstrap") return run_bootstrap(a, out);
  out["error"] = "unknown scenario";
  return false;
}

}  // namespace dog::membership::bench
