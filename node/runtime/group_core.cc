#include "node/runtime/group_core.h"

#include <algorithm>

namespace dog::runtime {

GroupCore::Kid* GroupCore::find(std::string_view sid) {
  auto it = kids_.find(std::string(sid));
  return it == kids_.end() ? nullptr : &it->second;
}

const GroupCore::Kid* GroupCore::find(std::string_view sid) const {
  auto it = kids_.find(std::string(sid));
  return it == kids_.end() ? nullptr : &it->second;
}

void GroupCore::set_count(Kid& k, int count) {
  by_load_.erase({k.count, k.seq});
  k.count = std::max(0, count);
  by_load_.insert({k.count, k.seq});
}

void GroupCore::unmap_rid(std::string_view rid) {
  auto it = mapping_.find(std::string(rid));
  if (it == mapping_.end()) return;
  if (Kid* k = find(it->second)) k->rids.erase(it->first);
  mapping_.erase(it);
}

void GroupCore::map_rid(std::string_view rid, const std::string& sid) {
  unmap_rid(rid);
  if (Kid* k = find(sid)) {
    k->rids.emplace(rid);
    mapping_.emplace(std::string(rid), sid);
  }
}

const std::string* GroupCore::sort(int limit) {
  head_.reset();
  if (by_load_.empty() || by_load_.begin()->first >= limit) return nullptr;
  head_ = by_seq_.at(by_load_.begin()->second);
  return &*head_;
}

std::optional<std::string> GroupCore::place(std::string_view rid, int limit) {
  // Candidate: the request id's last Replica, else the sticky one, else the sorted list's head.
  std::string sid;
  if (auto it = mapping_.find(std::string(rid)); it != mapping_.end()) sid = it->second;
  else if (current_) sid = *current_;
  else if (head_) sid = *head_;

  Kid* chosen = nullptr;
  if (Kid* k = sid.empty() ? nullptr : find(sid); k && limit >= k->count + 1) {
    chosen = k;  // fast path: sticky and has room
    // `sid` already names it
  } else if (head_) {
    const std::string* least = sort(limit);  // least loaded with room, if any
    if (least) {
      sid = *least;
      chosen = find(sid);
    }
  }
  if (!chosen) return std::nullopt;
  set_count(*chosen, chosen->count + 1);
  current_ = chosen->count < limit ? std::optional<std::string>(sid) : std::nullopt;
  map_rid(rid, sid);
  return sid;
}

void GroupCore::add_new(std::string_view rid, const std::string& sid, int limit) {
  if (Kid* k = find(sid)) {
    set_count(*k, 1);  // a clusterize that returned a known id: DOG resets its count to 1
  } else {
    Kid& n = kids_[sid];
    n.count = 1;
    n.seq = next_seq_++;
    by_load_.insert({n.count, n.seq});
    by_seq_.emplace(n.seq, sid);
  }
  head_ = sid;
  current_ = 1 < limit ? std::optional<std::string>(sid) : std::nullopt;
  map_rid(rid, sid);
}

void GroupCore::acquire(const std::string& sid) {
  if (Kid* k = find(sid)) set_count(*k, k->count + 1);
}

GroupCore::CloseResult GroupCore::close(std::string_view sid, std::string_view rid, bool empty, int limit) {
  Kid* k = find(sid);
  if (!k) return CloseResult::kUnknownReplica;
  set_count(*k, k->count - 1);
  if (empty) unmap_rid(rid);
  const std::string* least = sort(limit);
  current_ = least ? std::optional<std::string>(*least) : std::nullopt;
  return CloseResult::kOk;
}

void GroupCore::adopt(const std::string& sid, int count, const std::vector<std::string>& rids, int limit) {
  if (Kid* k = find(sid)) {
    set_count(*k, count);
  } else {
    Kid& n = kids_[sid];
    n.count = std::max(0, count);
    n.seq = next_seq_++;
    by_load_.insert({n.count, n.seq});
    by_seq_.emplace(n.seq, sid);
  }
  for (const auto& rid : rids) map_rid(rid, sid);
  const std::string* least = sort(limit);
  current_ = least ? std::optional<std::string>(*least) : std::nullopt;
}

void GroupCore::forget(std::string_view sid) {
  auto it = kids_.find(std::string(sid));
  if (it == kids_.end()) return;
  for (const auto& rid : it->second.rids) mapping_.erase(rid);
  by_load_.erase({it->second.count, it->second.seq});
  by_seq_.erase(it->second.seq);
  kids_.erase(it);
  if (current_ && *current_ == sid) current_.reset();
  if (head_ && *head_ == sid) {
    head_.reset();
    // DOG never removes a Replica; the next head is the least loaded now (with any room).
    if (!by_load_.empty()) head_ = by_seq_.at(by_load_.begin()->second);
  }
}

std::optional<int> GroupCore::count(std::string_view sid) const {
  const Kid* k = find(sid);
  return k ? std::optional<int>(k->count) : std::nullopt;
}

std::optional<std::string> GroupCore::mapping(std::string_view rid) const {
  auto it = mapping_.find(std::string(rid));
  return it == mapping_.end() ? std::nullopt : std::optional<std::string>(it->second);
}

std::vector<std::string> GroupCore::rids_of(std::string_view sid) const {
  const Kid* k = find(sid);
  return k ? std::vector<std::string>(k->rids.begin(), k->rids.end()) : std::vector<std::string>{};
}

std::vector<std::string> GroupCore::replicas() const {
  std::vector<std::string> out;
  out.reserve(by_seq_.size());
  for (const auto& [seq, sid] : by_seq_) out.push_back(sid);
  return out;
}

}  // namespace dog::runtime
