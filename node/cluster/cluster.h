// dog::node::cluster::Cluster — one node's membership, routing view and RPC connections.
//
//   Cluster (one per node, on the node's Loop)
//     ├── SwimHost            SWIM + Lifeguard on UDP, SWIM streams on TCP  ─┐ one port (--bind):
//     ├── ConnectionManager   Cap'n Proto RPC on TCP                         ─┘ first byte demuxes
//     ├── RoutingTable        built from the alive+suspect members at every membership change
//     └── Listener            the DOG runtime: hears of deaths, restarts, self-suspicion
//
// Contract
// --------
// * Loop affinity: everything runs on one node::Loop; not thread-safe.
// * Node identity: `name` is unique in the cluster; `session` is a number that strictly grows
//   across restarts of one name, so a restarted node is a new member (its objects are gone).
// * Membership events reach the Listener after the routing table has been rebuilt, so a
//   listener that asks owner() sees the new view. Callbacks run from a fresh loop turn (never
//   inside a SWIM packet handler) and may call back into the Cluster.
// * owner() answers from the current table and never fails: a node is always a member of its
//   own view.
// * Errors: start() throws ClusterError with one line fit for the operator (bad address, cannot
//   bind, bad key file); a join that no seed answers within `join_timeout` rejects joined().
// * Operator lines on stderr: nothing until joined (so a failed start prints only its error),
//   then "dog: cluster node NAME on ADDR (...)" and "dog: cluster members N", and that member
//   line again whenever the count changes or a member is replaced.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <kj/async.h>

#include "node/loop.h"
#include "routing/object_id.h"
#include "routing/routing_table.h"
#include "rpc/connection_manager.h"
#include "rpc/dog.capnp.h"

namespace dog::node::swim {
class SwimHost;
}

namespace dog::node::cluster {

// A failure at start-up, with a message for the operator (no stack trace, one line). `kind()`
// is the typed reason (tests and callers branch on it, never on the text).
class ClusterError : public std::runtime_error {
 public:
  enum class Kind {
    kOther,
    kBadOption,        // a flag's value is malformed or a required flag is missing
    kKeyUnreadable,    // the key file cannot be opened/read, or exceeds kMaxKeyFileBytes
    kKeyNotBase64,     // a line is not base64
    kKeyWrongLength,   // a line decodes to something other than 32 bytes
    kKeyEmpty,         // the file holds no key
    kCannotBind,       // the cluster port cannot be bound
    kJoinTimeout,      // no seed answered within join_timeout
  };
  using std::runtime_error::runtime_error;
  ClusterError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_ = Kind::kOther;
};

struct ClusterOptions {
  std::string bind;                   // HOST:PORT: SWIM UDP + TCP (SWIM streams and RPC)
  std::string advertise;              // HOST:PORT peers dial; default: bind
  std::vector<std::string> join;      // seeds HOST:PORT; empty starts a new cluster
  std::string name;                   // default: the advertised address
  std::string preset = "lan";         // lan | wan | local
  std::string key_file;               // base64 32-byte keys, one per line; first encrypts
  std::string http_addr;              // published in metadata (what `members` shows)
  std::chrono::milliseconds join_timeout{30'000};
  uint64_t seed = 0;                  // protocol RNG; 0 draws from the OS
};

// What the runtime hears from the cluster.
class Listener {
 public:
  virtual ~Listener() = default;
  // The routing view changed (a member joined, left, died, or its session changed).
  virtual void on_view_change() {}
  // `node` (at `session`) is gone: dead, left, or replaced by a restart with a newer session.
  // Its objects and relayed sockets no longer exist.
  virtual void on_node_gone(const std::string& node, uint64_t session) {}
  // This node was suspected or declared dead by its peers (`serving` false) and, later, has
  // refuted it (`serving` true). While not serving it must not create objects it may not own.
  virtual void on_self_health(bool serving) {}
};

class Cluster {
 public:
  // `local` is this node's wire::Node, served to every peer.
  Cluster(Loop& loop, ClusterOptions options, rpc::wire::Node::Client local, Listener* listener);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Binds the cluster port, starts SWIM, begins joining the seeds. Throws ClusterError.
  // Every query below REQUIRES start() to have returned.
  void start();
  // Resolves once a seed answered (at once without seeds, or when every seed is this node's own
  // address); rejects after join_timeout with a kj::Exception (FAILED) whose description is one
  // operator line (ClusterError::Kind::kJoinTimeout is the only cause). May be called again.
  kj::Promise<void> joined();
  // Graceful leave; `done` runs once the leave has propagated (or at `deadline`), from a later
  // loop turn. Every caller's `done` runs; the earliest deadline wins. Stops join retries.
  void leave(std::chrono::milliseconds deadline, std::function<void()> done);

  const std::string& self() const;
  uint64_t session() const;
  // The cluster address peers reach this node at (IP:PORT, --advertise or the bound address).
  const std::string& address() const;
  // The owner of `id` under the current view.
  std::string owner(const routing::ObjectId& id) const;
  const routing::RoutingTable& table() const;
  // Alive or suspect members (this node included), by name.
  std::vector<std::string> members() const;
  bool is_member(const std::string& node) const;
  // The session of a member, if it is one.
  std::optional<uint64_t> session_of(const std::string& node) const;

  // The load this node publishes (its live Replica count); gossiped in membership metadata
  // (Meta.load), at most one set_meta per second and only on change: the latest value wins.
  // load_of() is what a member last published (0 if unknown).
  void publish_load(uint32_t replicas);
  uint32_t load_of(const std::string& node) const;

  // Cluster key rotation, memberlist/Serf keyring semantics, on this node: kInstall adds a key
  // that decrypts from now on, kUse makes an installed key the one that encrypts, kRemove drops
  // a key that is not the primary. Applied to the membership's and the RPC's keyrings alike (RPC
  // sessions made under a removed key end, rpc/connection_manager.h). Idempotent: installing an
  // installed key or removing an absent one succeeds. A rotation without failed probes runs each
  // step on every member before the next: install everywhere, use everywhere, remove everywhere.
  // On success the key file is rewritten (primary first, mode 0600, by rename) so a restart
  // keeps the keyring; if it cannot be, the change still holds in memory and `file_error` says
  // why.
  enum class KeyOp { kInstall, kUse, kRemove };
  struct KeyChange {
    enum class Refusal { kNone, kNotInstalled, kIsPrimary };
    Refusal refusal = Refusal::kNone;  // kNone: applied
    std::string file_error;            // "" when the key file was rewritten
  };
  KeyChange change_key(KeyOp op, const std::array<uint8_t, 32>& key);
  // The installed keys, the primary first.
  std::vector<std::array<uint8_t, 32>> keys() const;

  rpc::ConnectionManager& rpc();
  // The membership host, for tests and tools (fault injection: transport().set_silent()).
  swim::SwimHost& swim_host();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Key files: one base64 key of 32 bytes per line (blank lines and '#' comments ignored); the
// first encrypts, all decrypt. Throws ClusterError naming the file and line. Files larger than
// kMaxKeyFileBytes are refused before they are read.
inline constexpr size_t kMaxKeyFileBytes = 64 * 1024;
std::vector<std::array<uint8_t, 32>> read_key_file(const std::string& path);
// The same rules over the file's text; `path` only names the file in error messages.
std::vector<std::array<uint8_t, 32>> parse_key_text(std::string_view text, const std::string& path);
// A new random key, base64, for `APP keygen`.
std::string generate_key();
// Writes `keys` (base64, one per line, the first encrypts) to `path` through a temporary file
// in the same folder and a rename, mode 0600. Throws ClusterError (kKeyUnreadable) naming the
// step that failed.
void write_key_file(const std::string& path, const std::vector<std::array<uint8_t, 32>>& keys);

}  // namespace dog::node::cluster
