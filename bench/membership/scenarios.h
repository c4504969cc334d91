// Scenarios of dog-swim-sim. Each runs the production Swim core on sim::Network and returns
// its result fields as JSON; progress goes to stderr.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace dog::membership::bench {

struct ScenarioArgs {
  std::string scenario;
  size_t nodes = 1000;
  uint64_t seed = 1;
  double loss = 0;
  int64_t periods = 0;  // 0 = scenario default
  int trials = 0;       // 0 = scenario default (crash, dissemination)
  bool lifeguard = true;
  // Optional overrides of the LAN preset (0 = keep the preset), for parameter studies.
  uint32_t retransmit_mult = 0;
  uint32_t gossip_nodes = 0;
  uint32_t indirect_checks = 0;
  double suspicion_mult = 0;
  double nack_fraction = 0;
  int64_t jitter_us = -1;      // link jitter override (-1 = keep the 500 us default)
  int64_t pause_min_ms = 1000; // slow scenario: pause length U[min, max]
  int64_t pause_max_ms = 5000;
};

// Returns false (with "error" set in `out`) for an unknown scenario.
bool run_scenario(const ScenarioArgs& args, nlohmann::json& out);

}  // namespace dog::membership::bench
