#include "node/admin/probes.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace dog::admin {

std::optional<uint64_t> process_resident_bytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return std::nullopt;
  long page = ::sysconf(_SC_PAGESIZE);
  return resident * static_cast<uint64_t>(page > 0 ? page : 4096);
}

std::optional<uint64_t> process_open_fds() {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec), end;
  if (ec) return std::nullopt;
  uint64_t n = 0;
  for (; it != end; it.increment(ec)) {
    if (ec) return std::nullopt;
    ++n;
  }
  return n > 0 ? n - 1 : 0;  // the iterator's own descriptor is listed too
}

std::optional<uint64_t> process_max_fds() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return std::nullopt;
  return static_cast<uint64_t>(r.rlim_cur);
}

LoopLag::LoopLag(asio::io_context& io, std::chrono::milliseconds interval) : timer_(io), interval_(interval) {}

LoopLag::~LoopLag() { stop(); }

void LoopLag::start() {
  if (state_->running) return;
  state_->running = true;
  arm();
}

void LoopLag::stop() {
  state_->running = false;
  timer_.cancel();
}

void LoopLag::arm() {
  timer_.expires_after(interval_);
  const auto deadline = timer_.expiry();
  timer_.async_wait([this, deadline, state = state_](std::error_code ec) {
    if (ec || !state->running) return;  // stopped: `this` may be gone
    auto late = std::chrono::steady_clock::now() - deadline;
    state->hist.observe(std::chrono::duration<double>(late).count());
    arm();
  });
}

}  // namespace dog::admin
