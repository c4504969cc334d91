#include "node/cluster/options.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <cmath>

namespace dog::node::cluster {

using Kind = ClusterError::Kind;

void add_cluster_flags(CLI::App& cli, ClusterFlags& f) {
  const std::string group = "Cluster";
  cli.add_option("--bind", f.bind, "HOST:PORT of the cluster port (SWIM UDP+TCP and RPC)")
      ->group(group);
  cli.add_option("--advertise", f.advertise, "HOST:PORT peers dial (default: --bind)")->group(group);
  cli.add_option("--join", f.join, "seed HOST:PORT[,...]; none starts a new cluster")
      ->delimiter(',')
      ->group(group);
  cli.add_option("--name", f.name, "unique member name (default: the advertised address)")
      ->group(group);
  cli.add_option("--preset", f.preset, "membership timing: lan, wan or local")
      ->check(CLI::IsMember({"lan", "wan", "local"}))
      ->capture_default_str()
      ->group(group);
  cli.add_option("--cluster-key-file", f.key_file,
                 "file of base64 32-byte keys, one per line; the first encrypts")
      ->group(group);
  cli.add_option("--join-timeout-s", f.join_timeout_s, "give up joining after this many seconds")
      ->capture_default_str()
      ->group(group);
  f.keygen = cli.add_subcommand("keygen", "print a new cluster key (for --cluster-key-file)");
}

void add_env_names(CLI::App& cli) {
  for (CLI::Option* o : cli.get_options()) {
    if (!o->get_envname().empty() || o->get_lnames().empty()) continue;
    const std::string& n = o->get_lnames().front();
    if (n == "help" || n == "help-all" || n == "version") continue;
    std::string env = "DOG_";
    for (char c : n) env += c == '-' ? '_' : static_cast<char>(std::toupper(c));
    o->envname(env);
  }
}

bool keygen_requested(const ClusterFlags& f) { return f.keygen != nullptr && f.keygen->parsed(); }

std::optional<ClusterOptions> cluster_options_from(const ClusterFlags& f,
                                                   const std::string& http_addr,
                                                   const std::string& program) {
  if (f.bind.empty()) {
    const char* stray = !f.join.empty()           ? "--join"
                        : !f.advertise.empty()    ? "--advertise"
                        : !f.key_file.empty()     ? "--cluster-key-file"
                        : !f.name.empty()         ? "--name"
                                                  : nullptr;
    if (stray)
      throw ClusterError(Kind::kBadOption,
                         std::string(stray) + " needs --bind HOST:PORT (the cluster port)");
    return std::nullopt;
  }
  if (f.key_file.empty())
    throw ClusterError(Kind::kBadOption,
                       "--bind needs --cluster-key-file: cluster traffic is always encrypted; "
                       "make a key with `" + program + " keygen > cluster.key` and copy it to "
                       "every node");
  if (!(f.join_timeout_s > 0) || !(f.join_timeout_s <= 86400))
    throw ClusterError(Kind::kBadOption, "--join-timeout-s must be a positive number of seconds, at most 86400");
  ClusterOptions o;
  o.bind = f.bind;
  o.advertise = f.advertise;
  for (const auto& j : f.join)
    if (!j.empty()) o.join.push_back(j);
  o.name = f.name;
  o.preset = f.preset;
  o.key_file = f.key_file;
  o.http_addr = http_addr;
  o.join_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.join_timeout_s * 1000));
  return o;
}

}  // namespace dog::node::cluster
