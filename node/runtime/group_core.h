// GroupCore — a Group's connection bookkeeping as a pure state machine (no I/O, no clock).
//
// It reproduces DOG's placement exactly (dog-semantics §3.5, §3.9): "sticky fill-first" —
// the request id's last Replica, else the current sticky Replica, else the first of the sorted
// list, as long as it has room; otherwise the least-loaded Replica with room (ties to the
// earliest created); otherwise a new Replica. Every identify takes one slot, including repeats
// of a known request id. One deliberate addition: forget() removes a Replica that no longer
// exists (DOG never removes them).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dog::runtime {

class GroupCore {
 public:
  // Where identify() should send `rid`: an existing Replica (whose count is already taken), or
  // nullopt, meaning the caller must mint a new Replica id and call add_new().
  std::optional<std::string> place(std::string_view rid, int limit);

  // Registers a new Replica created for `rid` and gives it the first slot. Returns the ids of
  // the Replicas that existed before it (the ones to introduce it to).
  std::vector<std::string> add_new(std::string_view rid, const std::string& sid, int limit);

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

  // Removes a Replica that no longer exists from every structure.
  void forget(std::string_view sid);

  // Introspection, for tests and metrics.
  std::optional<int> count(std::string_view sid) const;
  std::optional<std::string> mapping(std::string_view rid) const;
  std::vector<std::string> replicas() const;  // creation order
  // The request ids mapped to `sid`.
  std::vector<std::string> rids_of(std::string_view sid) const;
  const std::optional<std::string>& current() const { return current_; }

 private:
  struct Kid {
    std::string sid;
    int count;
  };
  Kid* find(std::string_view sid);
  const Kid* find(std::string_view sid) const;
  // DOG's #sort(): Replicas with room, least loaded first, ties in creation order. Updates
  // `sorted_` and returns the first, if any.
  Kid* sort(int limit);

  std::vector<Kid> kids_;  // creation order
  std::unordered_map<std::string, std::string> mapping_;
  std::vector<std::string> sorted_;
  std::optional<std::string> current_;
};

}  // namespace dog::runtime
