#include "node/cluster/join.h"

#include <algorithm>
#include <cstdio>

#include <kj/debug.h>

#include "node/cluster/addr.h"

namespace dog::node::cluster {

namespace {
kj::ForkedPromise<void> make_fork(kj::Own<kj::PromiseFulfiller<void>>& f) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  f = kj::mv(paf.fulfiller);
  return paf.promise.fork();
}
}  // namespace

Joiner::Joiner(asio::io_context& io, std::vector<std::string> seeds,
               std::chrono::milliseconds timeout, std::vector<std::string> self_addrs, Send send,
               std::function<bool()> joined, std::function<void()> on_joined)
    : timer_(io),
      seeds_(std::move(seeds)),
      timeout_(timeout),
      self_addrs_(std::move(self_addrs)),
      send_(std::move(send)),
      joined_(std::move(joined)),
      on_joined_(std::move(on_joined)),
      forked_(make_fork(fulfiller_)) {}

Joiner::~Joiner() {
  *alive_ = false;
  timer_.cancel();
}

void Joiner::start() {
  deadline_ = std::chrono::steady_clock::now() + timeout_;
  attempt();
}

void Joiner::attempt() {
  if (finished_) return;
  if (joined_()) return finish(true);
  std::vector<std::string> resolved;
  bool any_other = false;
  for (const auto& s : seeds_) {
    std::string why;
    auto a = resolve_host_port(s, &why);
    if (!a) {
      last_problem_ = s + ": " + why;
      any_other = true;  // may resolve later
      continue;
    }
    std::string lit = swim::format_ip_port(a->ip, a->port);
    if (std::find(self_addrs_.begin(), self_addrs_.end(), lit) != self_addrs_.end()) continue;
    any_other = true;
    resolved.push_back(std::move(lit));
  }
  if (!any_other) return finish(true);  // only ourselves: we start the cluster
  ++attempts_;
  if (!resolved.empty()) send_(resolved);
  const auto now = std::chrono::steady_clock::now();
  if (now >= deadline_) return finish(false);
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now);
  timer_.expires_after(std::min(gap_, left));
  gap_ = std::min(gap_ * 2, kMaxGap);
  timer_.async_wait([this, a = alive_](std::error_code ec) {
    if (ec || !*a) return;
    attempt();
  });
}

void Joiner::check() {
  if (!finished_ && joined_()) finish(true);
}

void Joiner::stop() {
  timer_.cancel();
  finished_ = true;
}

void Joiner::finish(bool ok) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  if (ok) {
    succeeded_ = true;
    fulfiller_->fulfill();
    if (on_joined_) on_joined_();
    return;
  }
  std::string seeds;
  for (const auto& s : seeds_) seeds += (seeds.empty() ? "" : ",") + s;
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", static_cast<double>(timeout_.count()) / 1000.0);
  std::string msg = std::string("cannot join the cluster: no seed answered within ") + secs +
                    " s (--join " + seeds + ")";
  if (!last_problem_.empty()) msg += "; " + last_problem_;
  fulfiller_->reject(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(msg)));
}

}  // namespace dog::node::cluster
