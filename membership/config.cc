#include "membership/config.h"

#include <algorithm>
#include <cmath>

namespace dog::membership {

using std::chrono::milliseconds;
using std::chrono::seconds;

const char* to_string(MemberState s) {
  switch (s) {
    case MemberState::kAlive: return "alive";
    case MemberState::kSuspect: return "suspect";
    case MemberState::kDead: return "dead";
    case MemberState::kLeft: return "left";
  }
  return "?";
}

Config Config::lan() { return Config{}; }  // the in-class defaults are the LAN preset

Config Config::wan() {
  Config c;
  c.probe_interval = seconds(5);       // WAN round trips and loss: probe less often
  c.probe_timeout = seconds(3);        // memberlist WAN value
  c.indirect_timeout = milliseconds(1500);
  c.retry_timeout = milliseconds(500);
  c.suspicion_mult = 3;                // 9 s .. 54 s at N=1000 x 6
  c.gossip_interval = milliseconds(500);
  c.gossip_nodes = 4;
  c.gossip_to_the_dead = seconds(60);
  c.push_pull_interval = seconds(60);
  return c;
}

Config Config::local() {
  Config c;
  c.probe_timeout = milliseconds(100);  // loopback round trips are sub-millisecond
  c.indirect_timeout = milliseconds(150);
  c.retry_timeout = milliseconds(50);
  c.indirect_checks = 1;
  c.retransmit_mult = 2;
  c.gossip_interval = milliseconds(100);
  c.gossip_to_the_dead = seconds(15);
  c.push_pull_interval = seconds(15);
  return c;
}

std::optional<std::string> Config::validate() const {
  if (probe_interval <= Duration::zero()) return "probe_interval must be positive";
  if (probe_timeout <= Duration::zero() || indirect_timeout <= Duration::zero())
    return "probe_timeout and indirect_timeout must be positive";
  if (probe_timeout + indirect_timeout > probe_interval)
    return "probe_timeout + indirect_timeout must not exceed probe_interval";
  if (probe_retry && (retry_timeout <= Duration::zero() || retry_timeout >= indirect_timeout))
    return "retry_timeout must be in (0, indirect_timeout)";
  if (nack_fraction <= 0 || nack_fraction >= 1) return "nack_fraction must be in (0, 1)";
  if (suspicion_mult <= 0 || suspicion_max_mult < 1) return "suspicion multipliers out of range";
  if (awareness_max_multiplier < 1) return "awareness_max_multiplier must be >= 1";
  if (retransmit_mult < 1) return "retransmit_mult must be >= 1";
  if (max_datagram_bytes < 256 || max_datagram_bytes > 65000)
    return "max_datagram_bytes must be in [256, 65000]";
  if (gossip_interval <= Duration::zero()) return "gossip_interval must be positive";
  if (push_pull_interval <= Duration::zero()) return "push_pull_interval must be positive";
  if (max_name_bytes == 0 || max_name_bytes > 1024) return "max_name_bytes out of range";
  if (max_members < 2) return "max_members must be >= 2";
  if (session_id == 0) return "session_id must be nonzero (0 means unknown on the wire)";
  return std::nullopt;
}

Duration suspicion_timeout_min(double suspicion_mult, size_t n, Duration interval) {
  const double node_scale = std::max(1.0, std::log10(std::max<double>(1.0, static_cast<double>(n))));
  return Duration(static_cast<int64_t>(suspicion_mult * node_scale * static_cast<double>(interval.count())));
}

Duration suspicion_timeout(Duration min, Duration max, uint32_t k, uint32_t confirmations) {
  if (k == 0 || max <= min) return min;
  const double frac = std::log(static_cast<double>(confirmations) + 1.0) / std::log(static_cast<double>(k) + 1.0);
  const double raw = static_cast<double>(max.count()) - frac * static_cast<double>((max - min).count());
  return std::max(min, Duration(static_cast<int64_t>(std::floor(raw))));
}

uint32_t retransmit_limit(uint32_t retransmit_mult, size_t n) {
  const double scale = std::ceil(std::log10(static_cast<double>(n) + 1.0));
  return retransmit_mult * static_cast<uint32_t>(std::max(1.0, scale));
}

uint32_t push_pull_scale(size_t n) {
  constexpr double kThreshold = 32;
  if (n <= kThreshold) return 1;
  return static_cast<uint32_t>(std::ceil(std::log2(static_cast<double>(n)) - std::log2(kThreshold))) + 1;
}

}  // namespace dog::membership
