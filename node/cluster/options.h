// The cluster's command-line flags, shared by every dog::App (node/runtime/app.cc):
//
//   --bind HOST:PORT            the cluster port (SWIM UDP + TCP, RPC on the same TCP port)
//   --advertise HOST:PORT       what peers dial (NAT, containers); default: --bind
//   --join HOST:PORT[,...]      seeds; none starts a new cluster
//   --name NAME                 unique member name; default: the advertised address
//   --preset lan|wan|local      membership timing (membership::Config presets)
//   --cluster-key-file FILE     base64 32-byte keys, one per line (required with --bind)
//   --join-timeout-s SECONDS    give up joining after this (default 30)
//   APP keygen                  prints a new key and exits 0
//
// Every long flag of the App, these and the app's own, also reads DOG_<NAME> from the
// environment (--join-timeout-s: DOG_JOIN_TIMEOUT_S); a flag on the command line wins.
// No --bind = a single node, no key needed.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "node/cluster/cluster.h"

namespace CLI {
class App;
}

namespace dog::node::cluster {

struct ClusterFlags {
  std::string bind;
  std::string advertise;
  std::vector<std::string> join;
  std::string name;
  std::string preset = "lan";
  std::string key_file;
  double join_timeout_s = 30;
  CLI::App* keygen = nullptr;  // the `keygen` subcommand, set by add_cluster_flags
};

// Adds the flags above and the `keygen` subcommand to `cli`. `flags` must outlive parsing.
void add_cluster_flags(CLI::App& cli, ClusterFlags& flags);

// Gives every long option of `cli` that has no environment variable yet DOG_<NAME> (upper case,
// '-' -> '_'). Call after every option is added, before parsing.
void add_env_names(CLI::App& cli);

// True if `APP keygen` was given.
bool keygen_requested(const ClusterFlags& flags);

// The options for Cluster, or nullopt without --bind (single node). `http_addr` is published
// in the membership metadata. `program` names the binary in messages ("dog-chat"). Throws
// ClusterError (Kind::kBadOption) with one operator line: --bind without a key file (saying how
// to make one), cluster flags without --bind, a non-positive join timeout.
std::optional<ClusterOptions> cluster_options_from(const ClusterFlags& flags,
                                                   const std::string& http_addr,
                                                   const std::string& program);

}  // namespace dog::node::cluster
