#include "node/runtime/group_core.h"

#include <algorithm>

namespace dog::runtime {

GroupCore::Kid* GroupCore::find(std::string_view sid) {
  for (auto& k : kids_)
    if (k.sid == sid) return &k;
  return nullptr;
}

const GroupCore::Kid* GroupCore::find(std::string_view sid) const {
  for (const auto& k : kids_)
    if (k.sid == sid) return &k;
  return nullptr;
}

GroupCore::Kid* GroupCore::sort(int limit) {
  std::vector<Kid*> open;
  for (auto& k : kids_)
    if (k.count < limit) open.push_back(&k);
  std::stable_sort(open.begin(), open.end(), [](const Kid* a, const Kid* b) { return a->count < b->count; });
  sorted_.clear();
  for (auto* k : open) sorted_.push_back(k->sid);
  return open.empty() ? nullptr : open.front();
}

std::optional<std::string> GroupCore::place(std::string_view rid, int limit) {
  // Candidate: the request id's last Replica, else the sticky one, else the first sorted.
  std::string sid;
  if (auto it = mapping_.find(std::string(rid)); it != mapping_.end() && !it->second.empty()) sid = it->second;
  else if (current_ && !current_->empty()) sid = *current_;
  else if (!sorted_.empty()) sid = sorted_.front();

  Kid* chosen = nullptr;
  if (Kid* k = sid.empty() ? nullptr : find(sid); k && limit >= k->count + 1) {
    chosen = k;  // fast path: sticky and has room
  } else if (!sorted_.empty()) {
    chosen = sort(limit);  // least loaded with room, if any
  }
  if (!chosen) return std::nullopt;
  chosen->count += 1;
  current_ = chosen->count < limit ? std::optional<std::string>(chosen->sid) : std::nullopt;
  mapping_[std::string(rid)] = chosen->sid;
  return chosen->sid;
}

std::vector<std::string> GroupCore::add_new(std::string_view rid, const std::string& sid, int limit) {
  std::vector<std::string> existing;
  for (const auto& k : kids_) existing.push_back(k.sid);
  sorted_.insert(sorted_.begin(), sid);
  if (Kid* k = find(sid)) {
    k->count = 1;  // a clusterize that returned a known id: DOG resets its count to 1
  } else {
    kids_.push_back({sid, 1});
  }
  current_ = 1 < limit ? std::optional<std::string>(sid) : std::nullopt;
  mapping_[std::string(rid)] = sid;
  std::erase(existing, sid);
  return existing;
}

void GroupCore::acquire(const std::string& sid) {
  if (Kid* k = find(sid)) k->count += 1;
}

GroupCore::CloseResult GroupCore::close(std::string_view sid, std::string_view rid, bool empty, int limit) {
  Kid* k = find(sid);
  if (!k) return CloseResult::kUnknownReplica;
  k->count = std::max(0, k->count - 1);
  if (empty) mapping_.erase(std::string(rid));
  Kid* bucket = sort(limit);
  current_ = bucket ? std::optional<std::string>(bucket->sid) : std::nullopt;
  return CloseResult::kOk;
}

void GroupCore::adopt(const std::string& sid, int count, const std::vector<std::string>& rids, int limit) {
  if (Kid* k = find(sid)) k->count = std::max(0, count);
  else kids_.push_back({sid, std::max(0, count)});
  for (const auto& rid : rids) mapping_[rid] = sid;
  Kid* bucket = sort(limit);
  current_ = bucket ? std::optional<std::string>(bucket->sid) : std::nullopt;
}

void GroupCore::forget(std::string_view sid) {
  std::erase_if(kids_, [&](const Kid& k) { return k.sid == sid; });
  std::erase(sorted_, std::string(sid));
  if (current_ && *current_ == sid) current_.reset();
  std::erase_if(mapping_, [&](const auto& kv) { return kv.second == sid; });
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
  std::vector<std::string> out;
  for (const auto& [rid, s] : mapping_)
    if (s == sid) out.push_back(rid);
  return out;
}

std::vector<std::string> GroupCore::replicas() const {
  std::vector<std::string> out;
  for (const auto& k : kids_) out.push_back(k.sid);
  return out;
}

}  // namespace dog::runtime
