// GroupCore — a Group's connection bookkeeping as a pure state machine (no I/O, no clock).
//
// It reproduces DOG's placement exactly (dog-semantics §3.5, §3.9): "sticky fill-first" —
// the request id's last Replica, else the current sticky Replica, else the first of the sorted
// list, as long as it has room; otherwise the least-loaded Replica with room (ties to the
// earliest created); otherwise a new Replica. Every identify takes one slot, including repeats
// of a known request id. One deliberate addition: forget() removes a Replica that no longer
// exists (DOG never removes them).
//
// Cost: place, add_new, acquire, close and adopt (per request id) are O(log n) in the Group's
// Replicas, so a Group of thousands of Replicas places a socket as fast as a Group of one
// (DOG re-sorts every Replica on every close). forget is O(log n + its request ids).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace dog::runtime {

class GroupCore {
 public:
  // Where identify() should send `rid`: an existing Replica (whose count is already taken), or
  // nullopt, meaning the caller must mint a new Replica id and call add_new().
  std::optional<std::string> place(std::string_view rid, int limit);

  // Registers a new Replica created for `rid` and gives it the first slot. It heads DOG's sorted
  // list until the next re-sort. A known `sid` keeps its place and restarts at one slot.
  void add_new(std::string_view rid, const std::string& sid, int limit);

  // Takes one more slot on `sid` without placement (a stub fetched more than once).
  void acquire(const std::string& sid);

  enum class CloseResult { kOk, kUnknownReplica };
  // Releases one slot of `sid` (never below 0). `empty` means `rid` has no sockets left there,
  // which forgets the request id's mapping. Then the least-loaded Replica with room becomes the
  // sticky one.
  CloseResult close(std::string_view sid, std::string_view rid, bool empty, int limit);

  // Takes over a Replica that already exists with `count` slots held and `rids` mapped to it
  // (a Group rebuilt on a new node after its node died). Idempotent: a second report of the
  // same Replica replaces its count.
  void adopt(const std::string& sid, int count, const std::vector<std::string>& rids, int limit);

  // Removes a Replica that no longer exists from every structure. If it headed the sorted list,
  // the least-loaded Replica heads it now (full or not: placement re-sorts when it is full).
  void forget(std::string_view sid);

  // Introspection, for tests and metrics.
  std::optional<int> count(std::string_view sid) const;
  std::optional<std::string> mapping(std::string_view rid) const;
  std::vector<std::string> replicas() const;  // creation order
  size_t size() const { return kids_.size(); }
  // The request ids mapped to `sid`.
  std::vector<std::string> rids_of(std::string_view sid) const;
  const std::optional<std::string>& current() const { return current_; }

 private:
  struct Kid {
    int count = 0;
    uint64_t seq = 0;                      // creation order
    std::unordered_set<std::string> rids;  // request ids mapped here
  };
  using Kids = std::unordered_map<std::string, Kid>;
  Kid* find(std::string_view sid);
  const Kid* find(std::string_view sid) const;
  void set_count(Kid& k, int count);
  void map_rid(std::string_view rid, const std::string& sid);
  void unmap_rid(std::string_view rid);
  // DOG's #sort(): the least-loaded Replica with room, ties to the earliest created, or null.
  // Records it as the head of the sorted list.
  const std::string* sort(int limit);

  Kids kids_;
  std::set<std::pair<int, uint64_t>> by_load_;  // (count, seq) of every Replica
  std::map<uint64_t, std::string> by_seq_;      // seq -> sid, creation order
  uint64_t next_seq_ = 0;
  std::unordered_map<std::string, std::string> mapping_;  // request id -> sid
  // The head of DOG's sorted list as of the last sort() or add_new() (DOG reads only its
  // head); empty when that list was empty.
  std::optional<std::string> head_;
  std::optional<std::string> current_;
};

}  // namespace dog::runtime
