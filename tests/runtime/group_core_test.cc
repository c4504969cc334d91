// GroupCore as a pure state machine: DOG's worked trace (dog-semantics §4), step by step.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>

#include "node/runtime/group_core.h"

using dog::runtime::GroupCore;

TEST_CASE("GroupCore replays DOG's worked trace with limit 2", "[group_core]") {
  GroupCore g;
  const int L = 2;
  // 1. identify(A): nothing known -> new R1.
  REQUIRE_FALSE(g.place("A", L));
  g.add_new("A", "R1", L);
  CHECK(g.replicas() == std::vector<std::string>{"R1"});
  CHECK(g.current() == "R1");
  // 2. identify(B): sticky R1 has room.
  CHECK(g.place("B", L) == "R1");
  CHECK(g.count("R1") == 2);
  CHECK_FALSE(g.current());
  // 3. identify(C): R1 full, nothing sorted with room -> new R2.
  REQUIRE_FALSE(g.place("C", L));
  g.add_new("C", "R2", L);
  CHECK(g.replicas() == std::vector<std::string>{"R1", "R2"});
  CHECK(g.mapping("C") == "R2");
  // 4. identify(A) again: R1 full -> least loaded with room R2; mapping moves.
  CHECK(g.place("A", L) == "R2");
  CHECK(g.mapping("A") == "R2");
  CHECK(g.count("R2") == 2);
  // 5. A's socket on R1 closes, empty: R1 back to 1, A's mapping deleted, R1 sticky.
  CHECK(g.close("R1", "A", true, L) == GroupCore::CloseResult::kOk);
  CHECK(g.count("R1") == 1);
  CHECK_FALSE(g.mapping("A"));
  CHECK(g.current() == "R1");
  // 6. identify(D): sticky R1.
  CHECK(g.place("D", L) == "R1");
}

TEST_CASE("GroupCore forget removes a Replica from every structure", "[group_core]") {
  GroupCore g;
  g.place("A", 1);
  g.add_new("A", "R1", 1);
  g.place("B", 1);
  g.add_new("B", "R2", 1);
  g.close("R2", "B", false, 1);  // R2 sticky, B still mapped to R2
  g.forget("R2");
  CHECK(g.replicas() == std::vector<std::string>{"R1"});
  CHECK_FALSE(g.current());
  CHECK_FALSE(g.mapping("B"));
  CHECK(g.close("R2", "B", true, 1) == GroupCore::CloseResult::kUnknownReplica);
  // A new request id now needs a new Replica (R1 is full), not the forgotten one.
  CHECK_FALSE(g.place("C", 1));
}

namespace {
// DOG's placement as DOG writes it (dog-semantics §3.5): a list of Replicas in creation order,
// re-sorted in full on every close. GroupCore must make the same choices with its indexes.
struct ReferenceCore {
  struct Kid {
    std::string sid;
    int count;
  };
  std::vector<Kid> kids;
  std::map<std::string, std::string> mapping;
  std::vector<std::string> sorted;
  std::optional<std::string> current;

  Kid* find(const std::string& sid) {
    for (auto& k : kids)
      if (k.sid == sid) return &k;
    return nullptr;
  }
  Kid* sort(int limit) {
    std::vector<Kid*> open;
    for (auto& k : kids)
      if (k.count < limit) open.push_back(&k);
    std::stable_sort(open.begin(), open.end(), [](Kid* a, Kid* b) { return a->count < b->count; });
    sorted.clear();
    for (auto* k : open) sorted.push_back(k->sid);
    return open.empty() ? nullptr : open.front();
  }
  std::optional<std::string> place(const std::string& rid, int limit) {
    std::string sid;
    if (mapping.count(rid)) sid = mapping[rid];
    else if (current) sid = *current;
    else if (!sorted.empty()) sid = sorted.front();
    Kid* chosen = nullptr;
    if (Kid* k = sid.empty() ? nullptr : find(sid); k && limit >= k->count + 1) chosen = k;
    else if (!sorted.empty()) chosen = sort(limit);
    if (!chosen) return std::nullopt;
    chosen->count += 1;
    current = chosen->count < limit ? std::optional<std::string>(chosen->sid) : std::nullopt;
    mapping[rid] = chosen->sid;
    return chosen->sid;
  }
  void add_new(const std::string& rid, const std::string& sid, int limit) {
    sorted.insert(sorted.begin(), sid);
    if (Kid* k = find(sid)) k->count = 1;
    else kids.push_back({sid, 1});
    current = 1 < limit ? std::optional<std::string>(sid) : std::nullopt;
    mapping[rid] = sid;
  }
  void acquire(const std::string& sid) {
    if (Kid* k = find(sid)) k->count += 1;
  }
  void adopt(const std::string& sid, int count, const std::vector<std::string>& rids, int limit) {
    if (Kid* k = find(sid)) k->count = std::max(0, count);
    else kids.push_back({sid, std::max(0, count)});
    for (const auto& rid : rids) mapping[rid] = sid;
    Kid* b = sort(limit);
    current = b ? std::optional<std::string>(b->sid) : std::nullopt;
  }
  // Our addition (DOG never removes a Replica): if the forgotten one headed the sorted list, the
  // least-loaded Replica (full or not) heads it now.
  void forget(const std::string& sid) {
    bool was_head = !sorted.empty() && sorted.front() == sid;
    std::erase_if(kids, [&](const Kid& k) { return k.sid == sid; });
    std::erase(sorted, sid);
    if (current == sid) current.reset();
    std::erase_if(mapping, [&](const auto& kv) { return kv.second == sid; });
    if (was_head && !kids.empty()) {
      std::vector<Kid*> all;
      for (auto& k : kids) all.push_back(&k);
      std::stable_sort(all.begin(), all.end(), [](Kid* a, Kid* b) { return a->count < b->count; });
      sorted.insert(sorted.begin(), all.front()->sid);
    }
  }
  void close(const std::string& sid, const std::string& rid, bool empty, int limit) {
    Kid* k = find(sid);
    if (!k) return;
    k->count = std::max(0, k->count - 1);
    if (empty) mapping.erase(rid);
    Kid* b = sort(limit);
    current = b ? std::optional<std::string>(b->sid) : std::nullopt;
  }
};
}  // namespace

TEST_CASE("GroupCore makes DOG's choices on 20,000 random identifies, closes, adopts and forgets", "[group_core]") {
  for (int limit : {1, 2, 3, 7}) {
    GroupCore g;
    ReferenceCore ref;
    std::mt19937 rng(1234 + limit);
    std::vector<std::pair<std::string, std::string>> open;  // (sid, rid) of live sockets
    int minted = 0;
    for (int step = 0; step < 5000; ++step) {
      uint32_t dice = rng() % 100;
      if (!ref.kids.empty() && dice < 3) {
        // A failover path: a Replica's count re-reported (adopt), an extra slot (acquire), or
        // the Replica gone (forget, with its sockets).
        std::string sid = ref.kids[rng() % ref.kids.size()].sid;
        if (dice == 0) {
          int count = int(rng() % (limit + 1));
          std::vector<std::string> rids{"r" + std::to_string(rng() % 40)};
          g.adopt(sid, count, rids, limit);
          ref.adopt(sid, count, rids, limit);
        } else if (dice == 1) {
          g.acquire(sid);
          ref.acquire(sid);
        } else {
          g.forget(sid);
          ref.forget(sid);
          std::erase_if(open, [&](auto& o) { return o.first == sid; });
        }
      } else if (open.empty() || dice < 55) {
        std::string rid = "r" + std::to_string(rng() % 40);
        auto got = g.place(rid, limit);
        auto want = ref.place(rid, limit);
        REQUIRE(got == want);
        if (!got) {
          std::string sid = "S" + std::to_string(minted++);
          g.add_new(rid, sid, limit);
          ref.add_new(rid, sid, limit);
          got = sid;
        }
        open.emplace_back(*got, rid);
      } else {
        size_t i = rng() % open.size();
        auto [sid, rid] = open[i];
        open.erase(open.begin() + long(i));
        bool empty = std::none_of(open.begin(), open.end(), [&](auto& o) { return o == std::make_pair(sid, rid); });
        REQUIRE(g.close(sid, rid, empty, limit) == GroupCore::CloseResult::kOk);
        ref.close(sid, rid, empty, limit);
      }
      // One assertion per step (Catch's per-assertion cost dominates under ASan otherwise).
      std::string diff;
      if (g.current() != ref.current) diff += "current ";
      if (g.size() != ref.kids.size()) diff += "size ";
      for (const auto& k : ref.kids)
        if (g.count(k.sid) != k.count) diff += "count:" + k.sid + " ";
      for (const auto& [rid, sid] : ref.mapping)
        if (g.mapping(rid) != sid) diff += "mapping:" + rid + " ";
      INFO("step " << step << " limit " << limit);
      REQUIRE(diff.empty());
    }
    CHECK(minted > 3);  // the random walk really did fill Replicas and create new ones
  }
}

TEST_CASE("GroupCore forget drops the request ids mapped to the Replica and no others", "[group_core]") {
  GroupCore g;
  g.add_new("A", "R1", 2);
  REQUIRE(g.place("B", 2) == "R1");
  g.add_new("C", "R2", 2);
  g.forget("R1");
  CHECK_FALSE(g.mapping("A"));
  CHECK_FALSE(g.mapping("B"));
  CHECK(g.mapping("C") == "R2");
  CHECK(g.rids_of("R2") == std::vector<std::string>{"C"});
  CHECK(g.size() == 1);
  // The head of the sorted list was R2 (the newest); placement goes on there.
  CHECK(g.place("D", 2) == "R2");
}
