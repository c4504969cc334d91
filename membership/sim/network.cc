#include "membership/sim/network.h"

#include <stdexcept>

#include "membership/swim.h"

namespace dog::membership::sim {

class Network::Endpoint : public Transport, public Timer {
 public:
  Endpoint(Network& net, uint32_t id, std::string addr) : net_(net), id_(id), addr_(std::move(addr)) {}

  void send_datagram(std::string_view to, std::span<const uint8_t> bytes) override {
    net_.send(id_, to, bytes, false);
  }
  void send_stream(std::string_view to, std::span<const uint8_t> bytes) override {
    net_.send(id_, to, bytes, true);
  }
  void wake_at(TimePoint at) override { net_.wake(id_, at); }

  Network& net_;
  uint32_t id_;
  std::string addr_;
  Swim* swim = nullptr;
  EndpointCounters counters;
  double egress_loss = 0, ingress_loss = 0;
  Duration flap_down{0}, flap_up{0};
  TimePoint paused_until{0};
  bool crashed = false;
  bool timer_due_in_pause = false;
  bool freeze = false;
  TimePoint timer_at = TimePoint::max();
  uint32_t timer_gen = 0;
  std::vector<Ev> backlog;
};

Network::Network(uint64_t seed, size_t mtu) : rng_(seed), mtu_(mtu) {}
Network::~Network() = default;

uint32_t Network::add_endpoint(const std::string& addr) {
  const uint32_t id = static_cast<uint32_t>(endpoints_.size());
  if (!by_addr_.emplace(addr, id).second) throw std::invalid_argument("duplicate address " + addr);
  endpoints_.push_back(std::make_unique<Endpoint>(*this, id, addr));
  return id;
}

void Network::attach(uint32_t id, Swim* swim) { endpoints_[id]->swim = swim; }
Transport& Network::transport(uint32_t id) { return *endpoints_[id]; }
Timer& Network::timer(uint32_t id) { return *endpoints_[id]; }
const std::string& Network::addr(uint32_t id) const { return endpoints_[id]->addr_; }
const EndpointCounters& Network::counters(uint32_t id) const { return endpoints_[id]->counters; }

void Network::set_link(uint32_t from, uint32_t to, const LinkParams& p) {
  links_[(uint64_t{from} << 32) | to] = p;
}
void Network::set_egress_loss(uint32_t id, double p) { endpoints_[id]->egress_loss = p; }
void Network::set_ingress_loss(uint32_t id, double p) { endpoints_[id]->ingress_loss = p; }
void Network::set_partition(const std::vector<int>& groups) { partition_ = groups; }
void Network::set_flapping(uint32_t id, Duration down, Duration up) {
  endpoints_[id]->flap_down = down;
  endpoints_[id]->flap_up = up;
}

void Network::pause(uint32_t id, Duration d, PauseKind kind) {
  Endpoint& e = *endpoints_[id];
  if (e.crashed) return;
  e.freeze = kind == PauseKind::kFreeze;
  const TimePoint until = now_ + d;
  if (until <= e.paused_until) return;
  e.paused_until = until;
  push(Ev{until, 0, EvKind::kResume, id, id, 0});
}
bool Network::paused(uint32_t id) const { return endpoints_[id]->paused_until > now_; }
void Network::crash(uint32_t id) { endpoints_[id]->crashed = true; }
bool Network::crashed(uint32_t id) const { return endpoints_[id]->crashed; }

void Network::push(Ev ev) {
  ev.order = order_++;
  queue_.push(ev);
}

uint32_t Network::alloc_buf(std::span<const uint8_t> bytes) {
  uint32_t b;
  if (!free_bufs_.empty()) {
    b = free_bufs_.back();
    free_bufs_.pop_back();
  } else {
    b = static_cast<uint32_t>(bufs_.size());
    bufs_.emplace_back();
  }
  bufs_[b].assign(bytes.begin(), bytes.end());
  return b;
}

void Network::free_buf(uint32_t b) {
  if (bufs_[b].capacity() > 64 * 1024) std::vector<uint8_t>().swap(bufs_[b]);  // drop big stream buffers
  free_bufs_.push_back(b);
}

bool Network::reachable(uint32_t from, uint32_t to) const {
  if (!partition_.empty() && partition_[from] != partition_[to]) return false;
  for (uint32_t id : {from, to}) {
    const Endpoint& e = *endpoints_[id];
    if (e.flap_down.count() > 0) {
      const int64_t cycle = (e.flap_down + e.flap_up).count();
      if (now_.count() % cycle < e.flap_down.count()) return false;
    }
  }
  return true;
}

void Network::send(uint32_t from, std::string_view to_addr, std::span<const uint8_t> bytes, bool stream) {
  Endpoint& src = *endpoints_[from];
  EndpointCounters& c = src.counters;
  if (stream) {
    ++c.streams_sent;
    c.stream_bytes_sent += bytes.size();
  } else {
    ++c.datagrams_sent;
    c.datagram_bytes_sent += bytes.size();
    if (bytes.size() > c.max_datagram_bytes) c.max_datagram_bytes = bytes.size();
    if (bytes.size() > mtu_) {
      ++c.mtu_violations;
      return;
    }
  }
  auto it = by_addr_.find(std::string(to_addr));
  if (it == by_addr_.end() || src.crashed) return;
  const uint32_t to = it->second;
  const Endpoint& dst = *endpoints_[to];
  if (dst.crashed || !reachable(from, to)) {
    ++c.datagrams_dropped;
    return;
  }
  auto link = links_.find((uint64_t{from} << 32) | to);
  const LinkParams& lp = link == links_.end() ? default_link_ : link->second;
  if (lp.flap_down.count() > 0 && now_.count() % (lp.flap_down + lp.flap_up).count() < lp.flap_down.count()) {
    ++c.datagrams_dropped;
    return;
  }
  if (!stream) {
    const double keep = (1 - src.egress_loss) * (1 - lp.loss) * (1 - dst.ingress_loss);
    if (keep < 1 && rng_.unit() >= keep) {
      ++c.datagrams_dropped;
      return;
    }
  }
  Duration delay = lp.delay;
  if (lp.jitter.count() > 0 && !stream) delay += Duration(rng_.uniform(lp.jitter.count()));
  if (stream) delay += lp.jitter;  // streams: fixed latency keeps frames in order per pair
  push(Ev{now_ + delay, 0, stream ? EvKind::kStream : EvKind::kDatagram, to, from, alloc_buf(bytes)});
}

void Network::wake(uint32_t id, TimePoint at) {
  Endpoint& e = *endpoints_[id];
  if (at >= e.timer_at && e.timer_at > now_) return;  // an earlier wake-up is already pending
  e.timer_at = at < now_ ? now_ : at;
  push(Ev{e.timer_at, 0, EvKind::kTimer, id, id, ++e.timer_gen});
}

void Network::deliver(const Ev& ev) {
  Endpoint& e = *endpoints_[ev.to];
  std::span<const uint8_t> bytes(bufs_[ev.buf].data(), bufs_[ev.buf].size());
  const std::string& from = endpoints_[ev.from]->addr_;
  if (ev.kind == EvKind::kDatagram)
    e.swim->on_datagram(from, bytes);
  else
    e.swim->on_stream(from, bytes);
  free_buf(ev.buf);
}

void Network::process(const Ev& ev) {
  Endpoint& e = *endpoints_[ev.to];
  switch (ev.kind) {
    case EvKind::kDatagram:
    case EvKind::kStream:
      if (e.crashed || !e.swim) {
        free_buf(ev.buf);
        return;
      }
      if (e.paused_until > now_) {
        e.backlog.push_back(ev);
        return;
      }
      deliver(ev);
      return;
    case EvKind::kTimer:
      if (ev.buf != e.timer_gen || e.crashed || !e.swim) return;
      e.timer_at = TimePoint::max();
      if (e.paused_until > now_ && e.freeze) {
        e.timer_due_in_pause = true;
        return;
      }
      e.swim->on_timer();
      return;
    case EvKind::kResume: {
      if (e.crashed || e.paused_until > now_ || !e.swim) return;
      if (e.timer_due_in_pause) {  // timers first: the slow member notices its deadlines late
        e.timer_due_in_pause = false;
        e.swim->on_timer();
      }
      std::vector<Ev> backlog;
      backlog.swap(e.backlog);
      for (const Ev& b : backlog) {
        if (e.crashed) {
          free_buf(b.buf);
          continue;
        }
        deliver(b);
      }
      return;
    }
  }
}

void Network::run_until(TimePoint t) {
  while (!queue_.empty() && queue_.top().at <= t) {
    Ev ev = queue_.top();
    queue_.pop();
    now_ = ev.at;
    ++events_processed_;
    process(ev);
  }
  now_ = t;
}

}  // namespace dog::membership::sim
