// dog::admin metrics: counters, gauges and histograms rendered in the Prometheus text
// exposition format 0.0.4 (what /metrics serves).
//
// Contract
// --------
// * Values are read at render time from the node's own counters (Runtime::Stats, HttpStats,
//   membership::Stats, ManagerStats); this module only keeps what has no other home: histograms.
// * TextWriter writes one family at a time: its `# HELP` and `# TYPE` lines once, then every
//   sample of that family, as the format requires (a family's samples must be contiguous).
// * Label values are escaped (backslash, double quote, newline); names are the caller's
//   constants and must match [a-zA-Z_:][a-zA-Z0-9_:]*.
// * Not thread-safe: everything here lives on the node's loop.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dog::admin {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Fixed buckets chosen at construction (upper bounds, ascending; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per bucket (not cumulative), one more than bounds(): the last is the +Inf bucket.
  const std::vector<uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

// 100 µs .. 10 s, roughly ×2.5 per step: RPC latencies and loop lag.
std::vector<double> latency_buckets();

class TextWriter {
 public:
  // Starts a family (`type`: counter, gauge or histogram) unless `name` is the current one.
  void family(std::string_view name, std::string_view type, std::string_view help);
  // One sample line: `name{labels} value`.
  void sample(std::string_view name, const Labels& labels, double value);
  // A family with a single unlabelled sample.
  void counter(std::string_view name, std::string_view help, double value);
  void gauge(std::string_view name, std::string_view help, double value);
  // The _bucket (cumulative, `le` label), _sum and _count samples of one labelled histogram.
  void histogram(std::string_view name, std::string_view help, const Labels& labels, const Histogram& h);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
  std::string current_;
};

// `\`, `"` and newline escaped as the format requires.
std::string escape_label_value(std::string_view v);
// Shortest text that reads back as `v`; "+Inf", "-Inf", "NaN" for the special values.
std::string format_value(double v);

}  // namespace dog::admin
