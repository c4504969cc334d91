// Hand-driven test harness: a manual clock and timer, and a transport that records what the
// core sends, so tests step one Swim instance through exact protocol flows (no sleeps).
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "membership/swim.h"
#include "membership/wire.h"

namespace dog::membership::test {

struct ManualClock : Clock {
  TimePoint t{0};
  TimePoint now() const override { return t; }
};

struct ManualTimer : Timer {
  TimePoint at = TimePoint::max();
  void wake_at(TimePoint a) override { at = a; }
};

struct CaptureTransport : Transport {
  struct Packet {
    std::string to;
    std::vector<uint8_t> bytes;
    bool stream;
  };
  std::vector<Packet> sent;
  void send_datagram(std::string_view to, std::span<const uint8_t> b) override {
    sent.push_back({std::string(to), {b.begin(), b.end()}, false});
  }
  void send_stream(std::string_view to, std::span<const uint8_t> b) override {
    sent.push_back({std::string(to), {b.begin(), b.end()}, true});
  }
};

struct RecordingSink : EventSink {
  std::vector<std::pair<EventKind, std::string>> events;
  std::vector<uint64_t> epochs;
  void on_member_event(const Event& e) override {
    events.emplace_back(e.kind, e.member->name);
    epochs.push_back(e.view_epoch);
  }
  size_t count(EventKind k, const std::string& name) const {
    size_t n = 0;
    for (auto& [kind, who] : events) n += kind == k && who == name;
    return n;
  }
};

inline Keyring::Key test_key(uint8_t fill) {
  Keyring::Key k;
  k.fill(fill);
  return k;
}

// Seals a plain message the way a peer named in it would (session 1, given counter).
inline std::vector<uint8_t> seal_as_peer(const Keyring& ring, std::span<const uint8_t> plain,
                                         std::span<const uint8_t> ad, uint64_t counter,
                                         uint64_t session = 1) {
  Keyring::Nonce n{};
  for (int i = 0; i < 8; ++i) n[i] = static_cast<uint8_t>(session >> (8 * i));
  for (int i = 0; i < 8; ++i) n[8 + i] = static_cast<uint8_t>(counter >> (8 * i));
  std::vector<uint8_t> out(plain.size() + Keyring::kOverhead);
  out.resize(ring.seal(plain, ad, n, out));
  return out;
}

// One Swim instance under full manual control.
struct Node {
  ManualClock clock;
  ManualTimer timer;
  CaptureTransport transport;
  RecordingSink sink;
  Keyring ring;
  Swim swim;

  Node(const std::string& name, const Keyring::Key& key, Config cfg = Config::lan(), uint64_t seed = 1)
      : ring(key), swim(cfg, Identity{name, name, Meta{}}, ring, clock, timer, transport, seed, &sink) {}

  // Moves virtual time to `t` and runs the timers that are due.
  void advance_to(TimePoint t) {
    clock.t = t;
    swim.on_timer();
  }
  void advance(Duration d) { advance_to(clock.t + d); }
};

}  // namespace dog::membership::test
