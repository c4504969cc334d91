// Joiner: sends join requests to the seeds, with back-off, until the membership has another
// live member or `timeout` passes.
//
//   attempt at 0, 0.25, 0.75, 1.75, 3.75 s, ... (gaps double from 250 ms, capped at 5 s)
//
// Each attempt re-resolves the seeds (a seed's host name may appear later, e.g. a container
// starting) and skips those that are our own address, so every node of a cluster may be given
// the same seed list. With no seed left, done() resolves at once: this node starts a cluster.
// done() rejects with a kj::Exception (FAILED) whose description is one operator line; the
// only failure is the timeout (ClusterError::Kind::kJoinTimeout). `on_joined` (optional) runs
// once, synchronously, when done() is fulfilled.
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <kj/async.h>

namespace dog::node::cluster {

class Joiner {
 public:
  using Send = std::function<void(std::span<const std::string> seeds)>;
  Joiner(asio::io_context& io, std::vector<std::string> seeds, std::chrono::milliseconds timeout,
         std::vector<std::string> self_addrs, Send send, std::function<bool()> joined,
         std::function<void()> on_joined = nullptr);
  ~Joiner();
  Joiner(const Joiner&) = delete;
  Joiner& operator=(const Joiner&) = delete;

  void start();
  // Call after every membership change: resolves done() once `joined()` is true.
  void check();
  // Stops retrying (leave); done() stays pending if it was.
  void stop();
  kj::Promise<void> done() { return forked_.addBranch(); }
  bool finished() const { return finished_; }
  bool succeeded() const { return succeeded_; }
  unsigned attempts() const { return attempts_; }

  static constexpr std::chrono::milliseconds kFirstGap{250};
  static constexpr std::chrono::milliseconds kMaxGap{5000};

 private:
  void attempt();
  void finish(bool ok);

  asio::steady_timer timer_;
  std::vector<std::string> seeds_;
  std::chrono::milliseconds timeout_;
  std::vector<std::string> self_addrs_;
  Send send_;
  std::function<bool()> joined_;
  std::function<void()> on_joined_;
  std::chrono::steady_clock::time_point deadline_{};
  std::chrono::milliseconds gap_ = kFirstGap;
  std::string last_problem_;
  unsigned attempts_ = 0;
  bool finished_ = false;
  bool succeeded_ = false;
  kj::Own<kj::PromiseFulfiller<void>> fulfiller_;
  kj::ForkedPromise<void> forked_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dog::node::cluster
