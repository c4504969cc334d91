// dog::admin RPC timing: calls this node's wire::Node serves, counted per method and outcome,
// with a latency histogram per method.
//
// `timed(inner, metrics)` returns a capability that forwards every call to `inner` unchanged
// (same parameters, capabilities included; the result is inner's, as a tail call) and records,
// when the call completes, its method name, its outcome ("ok", or the kj::Exception type in
// lower case: "failed", "overloaded", "disconnected", "unimplemented"; "cancelled" when the
// caller dropped it) and its duration on the steady clock. Calls are forwarded in the order
// they arrive, so per-connection ordering holds. Cost: one copy of each call's parameters and
// one local hop; app.cc installs it only when --admin is given.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "node/admin/metrics.h"
#include "rpc/dog.capnp.h"

namespace dog::admin {

class RpcMetrics {
 public:
  struct Method {
    std::map<std::string, uint64_t> outcomes;  // outcome -> calls
    Histogram seconds{latency_buckets()};
  };
  void record(const std::string& method, const std::string& outcome, double seconds);
  const std::map<std::string, Method>& methods() const { return methods_; }

 private:
  std::map<std::string, Method> methods_;
};

// The name of wire::Node's method `id` ("identifyGroup"), or "unknown" for an id outside
// rpc/dog.capnp's Node interface (calls on another interface are "unknown" too): the label set
// is bounded by the schema, whatever ids peers send.
std::string node_method_name(uint16_t id);

rpc::wire::Node::Client timed(rpc::wire::Node::Client inner, std::shared_ptr<RpcMetrics> metrics);

}  // namespace dog::admin
