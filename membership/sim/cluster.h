// A simulated cluster: N production Swim instances on one sim::Network, with one shared
// keyring and an event observer. Used by tests/membership and bench/membership (dog-swim-sim).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "membership/config.h"
#include "membership/events.h"
#include "membership/keyring.h"
#include "membership/sim/network.h"
#include "membership/swim.h"

namespace dog::membership::sim {

struct ClusterOptions {
  size_t nodes = 10;
  uint64_t seed = 1;
  Config config = Config::lan();
  LinkParams link;
  // true: every member starts knowing every other (TEST_install), as after a completed bootstrap.
  // false: members know only themselves; call join_all() to bootstrap through member 0.
  bool preinstalled = true;
};

class Cluster {
 public:
  // Observer of every event at every member: (observer id, event).
  using Observer = std::function<void(uint32_t, const Event&)>;

  explicit Cluster(const ClusterOptions& opts);
  ~Cluster();

  Network& net() { return net_; }
  Swim& node(uint32_t i) { return *nodes_[i]; }
  size_t size() const { return nodes_.size(); }
  Keyring& keyring() { return keyring_; }
  static std::string name_of(uint32_t i) { return "n" + std::to_string(i); }
  void set_observer(Observer o) { observer_ = std::move(o); }
  // Observer of user broadcasts delivered at every member: (receiver id, origin, payload).
  using UserObserver = std::function<void(uint32_t, std::string_view, std::span<const uint8_t>)>;
  void set_user_observer(UserObserver o) { user_observer_ = std::move(o); }
  // Observer of EventSink::on_self_state at every member: (member id, state, incarnation).
  using SelfObserver = std::function<void(uint32_t, MemberState, uint64_t)>;
  void set_self_observer(SelfObserver o) { self_observer_ = std::move(o); }

  // Starts every member (staggered over one probe interval by their own random phases).
  void start_all();
  // Every member except 0 joins through member 0 at the current time.
  void join_all();
  // Advances virtual time by `d`.
  void run_for(Duration d) { net_.run_until(net_.now() + d); }
  // Number of members (not crashed) whose view holds exactly `n` live members.
  size_t count_seeing(size_t n) const;

 private:
  class Sink;
  ClusterOptions opts_;
  Network net_;
  Keyring keyring_;
  std::vector<std::unique_ptr<Sink>> sinks_;
  std::vector<std::unique_ptr<Swim>> nodes_;
  Observer observer_;
  UserObserver user_observer_;
  SelfObserver self_observer_;
};

}  // namespace dog::membership::sim
