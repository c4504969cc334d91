// Replay detection for authenticated packets, keyed by sender name.
//
// Every sealed packet's nonce starts with the sender's (session id, counter). The counter is
// shared by all of a sender's packets, so one receiver sees an increasing, gappy subsequence,
// possibly reordered by the network. A packet is accepted once: a 64-entry sliding bitmap (as in
// IPsec/WireGuard) admits reordering within 64 of the highest counter seen. A higher session id
// (the sender restarted) resets the window; a lower one is a replay.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace dog::membership {

class ReplayWindow {
 public:
  // Returns true and records (session, counter) if it was never accepted before; false for a
  // replay, a stale session, or a counter older than the window.
  bool accept(std::string_view sender, uint64_t session, uint64_t counter);
  // Forgets a sender (called when a member is reaped).
  void forget(std::string_view sender);
  size_t size() const { return senders_.size(); }

 private:
  struct State {
    uint64_t session = 0;
    uint64_t highest = 0;
    uint64_t bitmap = 0;  // bit i set: counter (highest - i) accepted
  };
  std::unordered_map<std::string, State> senders_;
};

}  // namespace dog::membership
