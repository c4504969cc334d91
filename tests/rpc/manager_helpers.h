// Helpers shared by the manager tests: targets, requests, a fixed resolver, and the error
// kind of a failed delivery.
#pragma once

#include <string>
#include <utility>

#include <catch2/catch.hpp>

#include "rpc/calls.h"
#include "tests/rpc/harness.h"

namespace dog::rpc::testing {


inline Target target_of(uint8_t first) {
  Target t;
  t.ns = "Room";
  t.id.fill(0);
  t.id[0] = first;
  return t;
}

inline Request echo(std::string body) {
  Request r;
  r.method = "POST";
  r.path = "/echo";
  r.body = std::move(body);
  return r;
}

inline Resolver always(std::string node, uint64_t epoch = 1) {
  return [node, epoch](uint64_t) { return Routed{node, epoch}; };
}

inline ErrorKind error_of(node::Loop& loop, kj::Promise<DeliverOutcome> p) {
  ErrorKind kind = ErrorKind::kFailed;
  bool failed = false;
  p.then([](DeliverOutcome) {}, [&](kj::Exception&& e) {
     failed = true;
     kind = classify(e);
   }).wait(loop.wait_scope());
  REQUIRE(failed);
  return kind;
}


}  // namespace dog::rpc::testing
