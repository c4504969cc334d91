// Replay detection for authenticated packets, keyed by sender name.
//
// Every sealed packet's nonce starts with the sender's (session id, counter). The counter is
// shared by all of a sender's packets, so one receiver sees an increasing, gappy subsequence,
// possibly reordered by the network. A packet is accepted once: a 64-entry sliding bitmap (as in
// IPsec/WireGuard) admits reordering within 64 of the highest counter seen. A higher session id
// (the sender restarted) resets the window; a lower one is a replay.
//
// The core keeps one window per channel (datagrams, stream frames): a sender's counter is shared
// by both, so with one window a stream frame overtaken by 64 datagrams would look like a replay.
//
// Senders are remembered beyond their membership (a reaped member's window is kept, so a packet
// it sent before it was reaped stays a replay); the table holds at most `capacity` senders and
// evicts the least recently accepted one. A sender never seen (or evicted) is accepted once per
// counter from its first packet on: the member table's own rules (tombstones, sessions, the
// graveyard in swim.h) must reject stale content from it.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace dog::membership {

class ReplayWindow {
 public:
  explicit ReplayWindow(size_t capacity = 65536) : capacity_(capacity ? capacity : 1) {}
  // Returns true and records (session, counter) if it was never accepted before; false for a
  // replay, a stale session, or a counter older than the window.
  bool accept(std::string_view sender, uint64_t session, uint64_t counter);
  size_t size() const { return senders_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t evictions() const { return evictions_; }

 private:
  struct State {
    uint64_t session = 0;
    uint64_t highest = 0;
    uint64_t bitmap = 0;  // bit i set: counter (highest - i) accepted
    std::list<std::string>::iterator lru;
  };
  size_t capacity_;
  uint64_t evictions_ = 0;
  std::list<std::string> lru_;  // front: most recently accepted
  std::unordered_map<std::string, State> senders_;
};

}  // namespace dog::membership
