// dog-swim-sim --scenario S --nodes N --seed X [--loss P] [--periods K] [--trials K]
// Prints progress to stderr and ONE JSON object as the last stdout line.
#include <chrono>
#include <iostream>

#include <CLI/CLI.hpp>

#include "scenarios.h"

int main(int argc, char** argv) {
  dog::membership::bench::ScenarioArgs a;
  CLI::App app{"SWIM/Lifeguard membership simulator benchmark"};
  app.add_option("--scenario", a.scenario, "crash | steady | slow | dissemination | bootstrap")
      ->required()
      ->check(CLI::IsMember({"crash", "steady", "slow", "dissemination", "bootstrap"}));
  app.add_option("--nodes", a.nodes, "cluster size N")->check(CLI::Range(3, 20000));
  app.add_option("--seed", a.seed, "RNG seed (runs are reproducible per seed)");
  app.add_option("--loss", a.loss, "uniform datagram loss on every link, 0..1")->check(CLI::Range(0.0, 0.9));
  app.add_option("--periods", a.periods, "protocol periods to simulate (scenario default if 0)");
  app.add_option("--trials", a.trials, "trials for crash/dissemination (default if 0)");
  app.add_option("--retransmit-mult", a.retransmit_mult, "override Config::retransmit_mult");
  app.add_option("--indirect-checks", a.indirect_checks, "override Config::indirect_checks");
  app.add_option("--gossip-nodes", a.gossip_nodes, "override Config::gossip_nodes");
  app.add_option("--suspicion-mult", a.suspicion_mult, "override Config::suspicion_mult");
  app.add_option("--nack-fraction", a.nack_fraction, "override Config::nack_fraction")->check(CLI::Range(0.05, 0.95));
  app.add_option("--jitter-us", a.jitter_us, "link jitter: uniform extra delay in [0, J) us (default 500)");
  app.add_option("--pause-min-ms", a.pause_min_ms, "slow scenario: shortest pause (default 1000)");
  app.add_option("--pause-max-ms", a.pause_max_ms, "slow scenario: longest pause (default 5000)");
  CLI11_PARSE(app, argc, argv);

  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json out;
  const bool ok = dog::membership::bench::run_scenario(a, out);
  out["wall_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << out.dump() << std::endl;
  return ok ? 0 : 1;
}
