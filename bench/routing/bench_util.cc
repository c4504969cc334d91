#include "bench_util.h"

#include <sodium.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

namespace dog::bench {

std::vector<uint64_t> make_keys(size_t count, uint64_t seed) {
  if (sodium_init() < 0) throw std::runtime_error("sodium_init failed");
  unsigned char seed_bytes[randombytes_SEEDBYTES] = {};
  for (int i = 0; i < 8; ++i) seed_bytes[i] = static_cast<unsigned char>(seed >> (8 * i));
  std::vector<unsigned char> stream(count * 8);
  randombytes_buf_deterministic(stream.data(), stream.size(), seed_bytes);
  std::vector<uint64_t> keys(count);
  for (size_t i = 0; i < count; ++i) {
    uint64_t k = 0;
    for (int b = 0; b < 8; ++b) k = (k << 8) | stream[8 * i + b];
    keys[i] = k;
  }
  return keys;
}

namespace {

inline uint64_t tsc_begin() {
  _mm_lfence();
  const uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}

inline uint64_t tsc_end() {
  unsigned aux;
  const uint64_t t = __rdtscp(&aux);
  _mm_lfence();
  return t;
}

double ns_per_tick() {
  static const double value = [] {
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t c0 = tsc_begin();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(50)) {
    }
    const uint64_t c1 = tsc_end();
    const auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / double(c1 - c0);
  }();
  return value;
}

double percentile(std::vector<double>& v, double p) {
  const size_t idx = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + idx, v.end());
  return v[idx];
}

}  // namespace

Latency measure_latency(const std::vector<uint64_t>& keys, size_t samples,
                        const std::function<uint32_t(uint64_t)>& lookup) {
  // The std::function call is part of what is timed for every candidate alike; measure it with
  // an empty callee and subtract it together with the timer's own cost.
  const std::function<uint32_t(uint64_t)> empty = [](uint64_t k) {
    return static_cast<uint32_t>(k);
  };
  volatile uint32_t sink = 0;
  auto run = [&](const std::function<uint32_t(uint64_t)>& fn) {
    std::vector<double> ticks(samples);
    for (size_t i = 0; i < samples; ++i) {
      const uint64_t key = keys[i % keys.size()];
      const uint64_t t0 = tsc_begin();
      sink = sink + fn(key);
      const uint64_t t1 = tsc_end();
      ticks[i] = static_cast<double>(t1 - t0);
    }
    return ticks;
  };
  run(lookup);  // warm caches and the branch predictor
  std::vector<double> base = run(empty);
  const double overhead = percentile(base, 0.5);
  std::vector<double> ticks = run(lookup);
  for (double& t : ticks) t = std::max(0.0, t - overhead) * ns_per_tick();
  Latency out;
  out.p50_ns = percentile(ticks, 0.50);
  out.p99_ns = percentile(ticks, 0.99);
  return out;
}

double time_ms(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<Node> make_nodes(size_t n) {
  std::vector<Node> nodes(n);
  char buf[32];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "node-%04zu", i);
    nodes[i].name = buf;
  }
  return nodes;
}

Figures evaluate(Placer& placer, const std::vector<Node>& nodes, const std::vector<uint64_t>& keys,
                 size_t latency_samples) {
  Figures f;
  f.name = placer.name();
  f.keys = keys.size();
  const size_t n = nodes.size();

  std::vector<double> builds;
  for (int i = 0; i < 3; ++i) builds.push_back(time_ms([&] { placer.build(nodes); }));
  std::sort(builds.begin(), builds.end());
  f.rebuild_ms = builds[1];

  std::vector<uint32_t> base(keys.size());
  std::vector<size_t> counts(n, 0);
  for (size_t i = 0; i < keys.size(); ++i) ++counts[base[i] = placer.lookup(keys[i])];
  f.max_over_mean =
      double(*std::max_element(counts.begin(), counts.end())) / (double(keys.size()) / double(n));
  f.latency = measure_latency(keys, latency_samples, [&](uint64_t k) { return placer.lookup(k); });

  // One join: the new member is appended, so old indices stay valid.
  std::vector<Node> joined = nodes;
  joined.push_back(Node{"node-joiner", 1.0});
  placer.build(joined);
  size_t moved = 0, between_old = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t now = placer.lookup(keys[i]);
    if (now != base[i]) {
      ++moved;
      if (now != n) ++between_old;
    }
  }
  f.moved_join = double(moved) / (double(keys.size()) / double(n + 1));
  f.moved_join_between_old = moved ? double(between_old) / double(moved) : 0.0;

  // One leave of a member in the middle of the list; later indices shift down by one.
  const uint32_t gone = static_cast<uint32_t>(n / 3);
  std::vector<Node> left = nodes;
  left.erase(left.begin() + gone);
  placer.build(left);
  moved = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t now = placer.lookup(keys[i]);
    const uint32_t was = base[i];
    if (was == gone || now != (was > gone ? was - 1 : was)) ++moved;
  }
  f.moved_leave = double(moved) / (double(keys.size()) / double(n));
  placer.build(nodes);
  return f;
}

}  // namespace dog::bench
