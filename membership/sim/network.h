// In-process discrete-event network for the membership core (simulator).
//
// One virtual clock, one event queue, N endpoints addressed by strings. It runs the production
// Swim code unchanged: each endpoint exposes a Transport and a Timer, and the network calls the
// endpoint's Swim::on_datagram / on_stream / on_timer as events come due. Everything random
// (loss, jitter) draws from one seeded Rng and events are ordered by (time, insertion), so a run
// is a pure function of its seed and inputs.
//
// Fault model:
//  * per-link loss, delay and jitter (default link plus per-pair overrides);
//  * asymmetric loss: per-endpoint egress and ingress loss, applied independently;
//  * partitions (group ids; traffic between different groups is dropped) and flapping endpoints
//    (isolated for `down`, reachable for `up`, repeating);
//  * paused endpoints (CPU starvation), two kinds:
//      kMessages (Lifeguard's slow member, goal M4): inbound messages queue up unprocessed while
//        timers keep firing, so the member keeps probing and gossiping but reads acks late;
//      kFreeze: nothing runs; on resume overdue timers run first, then the backlog;
//    in both cases the backlog is delivered in arrival order on resume;
//  * crashed endpoints: silent in both directions from the crash on;
//  * an enforced MTU: a datagram over it is counted as a violation and dropped;
//  * byte counters per endpoint (sealed bytes, no IP/UDP headers).
// Streams are reliable (no loss) but are still cut by partitions, flapping and crashes.
#pragma once

#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "membership/clock.h"
#include "membership/rng.h"
#include "membership/transport.h"

namespace dog::membership {
class Swim;
}

namespace dog::membership::sim {

struct LinkParams {
  double loss = 0;
  Duration delay = std::chrono::microseconds(500);
  Duration jitter = std::chrono::microseconds(500);  // uniform extra in [0, jitter)
  // Flapping link: down for flap_down, then up for flap_up, repeating from time 0 (0 = never).
  Duration flap_down{0};
  Duration flap_up{0};
};

struct EndpointCounters {
  uint64_t datagrams_sent = 0;
  uint64_t datagram_bytes_sent = 0;
  uint64_t streams_sent = 0;
  uint64_t stream_bytes_sent = 0;
  uint64_t max_datagram_bytes = 0;
  uint64_t mtu_violations = 0;
  uint64_t datagrams_dropped = 0;  // by loss, partition, flapping or crash
};

class Network : public Clock {
 public:
  explicit Network(uint64_t seed, size_t mtu = 1400);
  ~Network() override;

  TimePoint now() const override { return now_; }

  // Adds an endpoint with the given address and returns its id (0, 1, ...).
  uint32_t add_endpoint(const std::string& addr);
  // Attaches the Swim instance that receives this endpoint's deliveries and timers.
  void attach(uint32_t id, Swim* swim);
  Transport& transport(uint32_t id);
  Timer& timer(uint32_t id);
  const std::string& addr(uint32_t id) const;
  size_t size() const { return endpoints_.size(); }

  // Faults.
  void set_default_link(const LinkParams& p) { default_link_ = p; }
  void set_link(uint32_t from, uint32_t to, const LinkParams& p);
  void set_egress_loss(uint32_t id, double p);
  void set_ingress_loss(uint32_t id, double p);
  void set_partition(const std::vector<int>& group_of_endpoint);  // empty = healed
  void set_flapping(uint32_t id, Duration down, Duration up);
  enum class PauseKind : uint8_t { kMessages, kFreeze };
  void pause(uint32_t id, Duration for_how_long, PauseKind kind = PauseKind::kMessages);
  bool paused(uint32_t id) const;
  void crash(uint32_t id);
  bool crashed(uint32_t id) const;

  // Runs events until virtual time `t` (inclusive) and leaves now() == t.
  void run_until(TimePoint t);

  const EndpointCounters& counters(uint32_t id) const;
  uint64_t events_processed() const { return events_processed_; }

 private:
  class Endpoint;
  enum class EvKind : uint8_t { kDatagram, kStream, kTimer, kResume };
  struct Ev {
    TimePoint at;
    uint64_t order;
    EvKind kind;
    uint32_t to;
    uint32_t from;
    uint32_t buf;   // buffer index (deliveries) or generation (timers)
    bool operator>(const Ev& o) const { return at != o.at ? at > o.at : order > o.order; }
  };

  void send(uint32_t from, std::string_view to_addr, std::span<const uint8_t> bytes, bool stream);
  void wake(uint32_t id, TimePoint at);
  void process(const Ev& ev);
  void deliver(const Ev& ev);
  bool reachable(uint32_t from, uint32_t to) const;
  uint32_t alloc_buf(std::span<const uint8_t> bytes);
  void free_buf(uint32_t b);
  void push(Ev ev);

  friend class Endpoint;
  Rng rng_;
  size_t mtu_;
  TimePoint now_{0};
  uint64_t order_ = 0;
  uint64_t events_processed_ = 0;
  LinkParams default_link_;
  std::unordered_map<uint64_t, LinkParams> links_;
  std::vector<int> partition_;
  std::unordered_map<std::string, uint32_t> by_addr_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::priority_queue<Ev, std::vector<Ev>, std::greater<Ev>> queue_;
  std::vector<std::vector<uint8_t>> bufs_;
  std::vector<uint32_t> free_bufs_;
};

}  // namespace dog::membership::sim
