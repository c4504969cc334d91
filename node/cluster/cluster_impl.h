// Cluster::Impl (private to node/cluster/): the state behind cluster.h, shared by cluster.cc
// (start-up, membership events, the routing view) and cluster_api.cc (the public methods).
#pragma once

#include <asio/steady_timer.hpp>
#include <sodium.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "membership/events.h"
#include "membership/rng.h"
#include "node/cluster/cluster.h"
#include "node/cluster/join.h"
#include "node/swim/swim_host.h"

namespace dog::node::cluster {

inline bool live(membership::MemberState s) {
  return s == membership::MemberState::kAlive || s == membership::MemberState::kSuspect;
}

// The protocol RNG's seed when ClusterOptions::seed is 0 (libsodium CSPRNG).
inline uint64_t os_seed() {
  if (sodium_init() < 0) return 1;
  uint64_t s = 0;
  randombytes_buf(&s, sizeof s);
  return s | 1;
}

struct Cluster::Impl final : membership::EventSink {
  struct Peer {
    uint64_t session = 0;
    membership::MemberState state = membership::MemberState::kDead;
    uint32_t load = 0;
  };
  struct Pending {
    membership::EventKind kind;
    membership::MemberInfo info;
  };

  Impl(Loop& l, ClusterOptions o, rpc::wire::Node::Client node, Listener* lis)
      : loop(l),
        opts(std::move(o)),
        local(kj::mv(node)),
        listener(lis),
        io(l.io()),
        rng(opts.seed ? opts.seed : os_seed()),
        publish_timer(l.io()),
        leave_timer(l.io()) {}

  ~Impl() noexcept override {
    *alive = false;
    join.reset();
    if (host) {
      host->transport().set_foreign_stream_handler(nullptr);
      host->transport().set_receiver(nullptr);
    }
    rpc.reset();   // holds KJ promises and sockets; before the host and the keyring
    host.reset();  // closes the cluster port (a crash for peers; leave() first to be graceful)
  }

  // --- start-up ---
  void start();
  void start_join();
  void announce();

  // --- events ---
  void on_member_event(const membership::Event& e) override;
  void on_self_state(membership::MemberState state, uint64_t incarnation) override;
  void post_drain();
  void drain();
  void apply(const Pending& p, std::vector<std::pair<std::string, uint64_t>>& gone);
  bool rebuild();

  void leave_tick();

  // --- load ---
  void publish_now();

  Loop& loop;
  ClusterOptions opts;
  rpc::wire::Node::Client local;
  Listener* listener;
  swim::SwimIo io;
  membership::Rng rng;
  std::unique_ptr<membership::Keyring> rpc_keyring;
  std::unique_ptr<swim::SwimHost> host;
  std::unique_ptr<rpc::ConnectionManager> rpc;
  std::unique_ptr<Joiner> join;
  std::string name;
  uint64_t session = 0;
  membership::Meta meta;  // what we last handed to set_meta

  std::optional<routing::RoutingTable> table;
  uint64_t epoch = 0;
  std::vector<std::string> live_names;  // sorted, self included
  std::map<std::string, Peer> peers;    // every member we heard of, self excluded

  std::deque<Pending> pending;
  bool drain_posted = false;
  bool announced = false;
  bool serving = true;             // as last told to the listener
  std::vector<bool> health_queue;  // on_self_state verdicts not yet told, in order

  uint32_t want_load = 0;
  std::chrono::steady_clock::time_point last_publish{};
  bool publish_armed = false;
  asio::steady_timer publish_timer;
  asio::steady_timer leave_timer;
  std::chrono::steady_clock::time_point leave_until{};
  std::vector<std::function<void()>> leave_waiters;  // leave() callers, told once it is done

  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
};

}  // namespace dog::node::cluster
