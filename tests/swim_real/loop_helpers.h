// Shared helpers of the node/swim/ unit tests: drive a Loop until a condition holds.
#pragma once

#include <chrono>
#include <functional>

#include "node/loop.h"

namespace swim_test {

// Runs the loop until `pred` holds or `timeout` passes; returns pred(). The timeout is a
// generous bound on waiting, never an assertion about speed.
inline bool run_until(dog::node::Loop& loop, const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    if (loop.io().stopped()) loop.io().restart();
    loop.io().run_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace swim_test
