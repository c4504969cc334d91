// dog::Runtime — hosts Groups and Replicas on one loop: namespaces, instances created on first
// use, identify, stub fetches, and the internal calls between objects.
//
// The routing seam: every call to another object goes through `locate()`, which today always
// answers "this node". The cluster layer will answer with an owner node and carry the same
// calls over rpc/ without any change to user code.
//
// Internal traffic (identify, slot release, introductions, fan-out, gossip) is made of C++
// calls between hosts, never URL paths, so no client request can reach it (a fix over DOG,
// whose internal routes share the URL space with user requests).
#pragma once

#include <asio/steady_timer.hpp>
#include <deque>
#include <map>
#include <memory>
#include <unordered_map>

#include "dog/dog.h"
#include "node/loop.h"
#include "node/runtime/group_core.h"

namespace dog {

// Per-Replica runtime state, hidden from user code behind Replica::state_.
struct Replica::State {
  Runtime* rt = nullptr;
  Replica* self = nullptr;
  Namespace* self_ns = nullptr;
  Namespace* parent_ns = nullptr;  // from link()
  std::string gid;                 // the Group that created this Replica, if any
  std::vector<std::string> neighbors;
  struct Entry {
    std::string rid;
    std::vector<std::shared_ptr<Socket>> sockets;
  };
  std::vector<Entry> pool;  // insertion order
  int inflight = 0;
  std::unique_ptr<asio::steady_timer> idle_timer;

  Entry* entry(std::string_view rid);
  // Sends `body` to every pooled socket whose request id differs from `sender`, or to all
  // when `self`.
  void emit_local(std::string_view sender, const std::string& body, bool self_too);
  void deliver_to(std::string_view target, const std::string& body);
  Task<void> broadcast(std::string sender, std::string body, bool self_too);
  Task<void> whisper(std::string sender, std::string target, std::string body);
  // The peers that still exist (missing ones leave `neighbors`).
  std::vector<std::shared_ptr<Replica>> live_peers();
  void add_neighbor(const std::string& nid);
  void remove_neighbor(const std::string& nid);
  void add_socket(const std::shared_ptr<Socket>& s);
  // Removes the socket; true if its request id has no socket left here.
  bool remove_socket(const std::shared_ptr<Socket>& s);
  // Releases one slot of `rid` at the Group.
  void release(const std::string& rid, bool empty);
  void touch();  // re-arms idle eviction when nothing is in flight
};

// Identity of a stub returned by identify(): which request id and Group it speaks for, and
// whether its first fetch has claimed the slot identify reserved.
struct Stub::Identity {
  std::string rid;
  std::string gid;
  Namespace* group_ns = nullptr;
  bool claimed = false;
  std::unique_ptr<asio::steady_timer> claim_timer;
};

class Runtime {
 public:
  Runtime(node::Loop& loop, RuntimeConfig config);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Namespace& add_group(std::string binding, std::function<std::shared_ptr<Group>()> make);
  Namespace& add_replica(std::string binding, std::function<std::shared_ptr<Replica>()> make);
  Env& env() { return env_; }
  node::Loop& loop() { return loop_; }
  const RuntimeConfig& config() const { return config_; }
  Namespace* find_namespace(std::string_view binding);

  // The routing seam. Today every object lives here.
  enum class Where { kLocal };
  Where locate(const Namespace&, const std::string& /*hex*/) const { return Where::kLocal; }

  Task<Response> fetch(Stub& stub, Request& req);
  Task<Stub> identify(const ObjectId& gid, std::string_view rid, const Family& family);

  // Instances, created on first use (two-phase: construct, set uid, link).
  std::shared_ptr<Group> group(Namespace& ns, const std::string& hex);
  std::shared_ptr<Replica> replica(Namespace& ns, const std::string& hex);
  // An existing Replica, or null (no creation): the target of internal calls.
  std::shared_ptr<Replica> peer(Namespace& ns, const std::string& hex);

  // Slot release, Replica -> Group.
  runtime::GroupCore::CloseResult group_close(Namespace& group_ns, const std::string& gid,
                                              const std::string& sid, const std::string& rid, bool empty);

  // Evicts `hex` from `ns` if it has no sockets and nothing in flight: it leaves its Group and
  // its peers' sets. Returns true if evicted.
  bool evict_if_idle(Namespace& ns, const std::string& hex);

  // For tests and metrics.
  runtime::GroupCore* group_core(Namespace& ns, const std::string& hex);
  size_t replica_count(const Namespace& ns) const;
  size_t group_count(const Namespace& ns) const;
  std::vector<std::string> neighbors(Namespace& ns, const std::string& hex);
  std::string group_of(Namespace& ns, const std::string& hex);
  size_t evict_all_idle();

  static std::string serialize(const Json& msg);

 private:
  struct GroupHost {
    std::shared_ptr<Group> obj;
    Namespace* child = nullptr;
    runtime::GroupCore core;
    bool identifying = false;                              // identify is atomic per Group
    int inflight = 0;                                      // requests in the Group's receive
    std::deque<std::shared_ptr<asio::steady_timer>> waiters;
  };
  struct Class {
    std::unique_ptr<Namespace> ns;
    bool is_group = false;
    std::function<std::shared_ptr<Group>()> make_group;
    std::function<std::shared_ptr<Replica>()> make_replica;
    std::unordered_map<std::string, std::shared_ptr<GroupHost>> groups;
    std::unordered_map<std::string, std::shared_ptr<Replica>> replicas;
  };
  Class& class_of(const Namespace& ns);
  const Class& class_of(const Namespace& ns) const;
  GroupHost& group_host(Namespace& ns, const std::string& hex);
  // A Group with no Replicas and nothing in flight holds nothing worth keeping: it is dropped,
  // so client-chosen group names cannot grow memory without bound.
  void maybe_evict_group(Namespace& group_ns, const std::string& gid);
  Task<void> lock_identify(GroupHost& host);
  void unlock_identify(GroupHost& host);
  void arm_claim_timeout(const std::shared_ptr<Stub::Identity>& id, Namespace& child, const std::string& sid);

  node::Loop& loop_;
  RuntimeConfig config_;
  Env env_;
  std::map<std::string, Class, std::less<>> classes_;
};

}  // namespace dog
