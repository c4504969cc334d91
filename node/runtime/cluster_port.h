// ClusterPort — what the DOG runtime needs from the cluster it runs on.
//
// The runtime (node/runtime/) routes objects with these answers and calls peers through the
// ConnectionManager. node/cluster/ implements it over SWIM + routing + rpc for real processes;
// tests implement it in-process (several runtimes on one loop, a fixed member list), so the
// routing logic is tested without sockets timing anything.
//
// Contract: every answer is about the caller's current view; views differ between nodes while
// membership converges, which is why every remote answer may be "not here, try X" and the
// runtime re-routes exactly once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "routing/object_id.h"
#include "routing/routing_table.h"
#include "rpc/connection_manager.h"

namespace dog {

class ClusterPort {
 public:
  virtual ~ClusterPort() = default;
  // This node's member name.
  virtual const std::string& self() const = 0;
  // The owner of `id` under the current view (may be self).
  virtual std::string owner(const routing::ObjectId& id) const = 0;
  // The current routing table (what owner() answers from; place_new draws against it).
  virtual const routing::RoutingTable& table() const = 0;
  // The current members (alive or suspect), self included.
  virtual std::vector<std::string> members() const = 0;
  virtual bool is_member(const std::string& node) const = 0;
  // The load a member last published (its live Replica count); 0 if unknown.
  virtual uint32_t load_of(const std::string& node) const = 0;
  virtual void publish_load(uint32_t replicas) = 0;
  // Calls into peers. Owned by the port; outlives the runtime's use of it.
  virtual rpc::ConnectionManager& rpc() = 0;
};

}  // namespace dog
