// dog::Runtime — hosts Groups and Replicas on one loop: namespaces, instances created on first
// use, identify, stub fetches, and the internal calls between objects.
//
// Routing: with a ClusterPort (node/runtime/cluster_port.h) every call to another object goes
// through `locate()`: a Group lives on the node that owned its id when it was activated, a
// Replica on the node its Group placed it on (`routing::place_new`, the less loaded of two),
// and a node that is asked for an object it does not hold answers "not here, try X"; the caller
// re-routes exactly once. Without a ClusterPort every object is local. docs/cluster.md has the
// whole design: the directory, the relay, the per-node fan-out, failover.
//
// Internal traffic (identify, slot release, introductions, fan-out, gossip) is made of C++
// calls between hosts, never URL paths, so no client request can reach it (a fix over DOG,
// whose internal routes share the URL space with user requests).
#pragma once

#include <asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <unordered_map>

#include "dog/dog.h"
#include "node/loop.h"
#include "node/runtime/cluster_port.h"
#include "node/runtime/fanout_pressure.h"
#include "node/runtime/group_core.h"
#include "rpc/dog.capnp.h"

namespace dog {

// Per-Replica runtime state, hidden from user code behind Replica::state_.
struct Replica::State {
  Runtime* rt = nullptr;
  std::shared_ptr<bool> rt_alive;  // false once `rt` is destroyed
  Replica* self = nullptr;
  Namespace* self_ns = nullptr;
  Namespace* parent_ns = nullptr;  // from link()
  std::string gid;                 // the Group that created this Replica, if any
  std::string group_node;          // where that Group lives (self when local or unknown)
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
  // Group-wide sends go to the Group's node, which reaches each node holding sockets once.
  void broadcast(const std::string& sender, std::string body, bool self_too);
  void whisper(const std::string& sender, const std::string& target, std::string body);
  void add_socket(const std::shared_ptr<Socket>& s);
  // Removes the socket; true if its request id has no socket left here.
  bool remove_socket(const std::shared_ptr<Socket>& s);
  // Releases one slot of `rid` at the Group.
  void release(const std::string& rid, bool empty);
  void touch();  // re-arms idle eviction when nothing is in flight
  // The slots this Replica holds at its Group (sockets + requests in flight), and the request
  // ids with a socket here.
  int slots(std::vector<std::string>* rids) const;
};

// Identity of a stub returned by identify(): which request id and Group it speaks for, and
// whether its first fetch has claimed the slot identify reserved.
struct Stub::Identity {
  std::string rid;
  std::string gid;
  std::string group_node;  // the node hosting the Group (self without a cluster)
  Namespace* group_ns = nullptr;
  bool claimed = false;
  // Shared with the claim timer, which outlives the stub: a slot whose stub was dropped without
  // a fetch is still given back at the claim timeout.
  std::shared_ptr<bool> claim_done;
  std::shared_ptr<asio::steady_timer> claim_timer;
};

class Runtime {
 public:
  struct EntryRelay;  // relay.cc: the entry node's end of a relayed WebSocket
  // `cluster` may be null (one node); it must outlive the runtime's use of it.
  Runtime(node::Loop& loop, RuntimeConfig config, ClusterPort* cluster = nullptr);
  // Attaches the cluster once it has started (its node name is known then). REQUIRES: no object
  // has been created yet.
  void set_cluster(ClusterPort* cluster);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Namespace& add_group(std::string binding, std::function<std::shared_ptr<Group>()> make);
  Namespace& add_replica(std::string binding, std::function<std::shared_ptr<Replica>()> make);
  Env& env() { return env_; }
  node::Loop& loop() { return loop_; }
  const RuntimeConfig& config() const { return config_; }
  Namespace* find_namespace(std::string_view binding);
  bool is_group_ns(const Namespace& ns) const { return class_of(ns).is_group; }

  // This node's name ("" without a cluster) and the node to try first for an object.
  const std::string& self_node() const { return self_; }
  std::string locate(const Namespace& ns, const std::string& hex) const;
  bool clustered() const { return cluster_ != nullptr; }
  ClusterPort* cluster() { return cluster_; }

  Task<Response> fetch(Stub& stub, Request& req);
  Task<Stub> identify(const ObjectId& gid, std::string_view rid, const Family& family);

  // --- the node's side of the cluster (service.cc, relay.cc, fanout.cc) ---
  // This node's wire::Node, served to every peer.
  rpc::wire::Node::Client make_service();
  // DOG identify on this node: serve it if the Group is (or may be) here, else name another.
  struct IdentifyAnswer {
    std::string sid, node;       // the Replica and the node it lives on
    std::string not_here;        // set instead: the node to try
  };
  Task<IdentifyAnswer> identify_here(Namespace& group_ns, const std::string& gid, std::string rid,
                                     const std::string& caller);
  // A request for a Replica or Group hosted here. `route` is the identify stub's identity.
  Task<Response> fetch_here(Namespace& ns, const std::string& hex, Request& req,
                            std::shared_ptr<Stub::Identity> route);
  // Group-side: forward a cast to each node holding sockets of the group (casts.cc).
  void group_cast(const std::string& gid, rpc::wire::GroupCast::Reader cast);
  // Node-side: deliver a cast to this node's client sockets of the group.
  void deliver_cast(rpc::wire::GroupCast::Reader cast);
  // Entry side: a client socket of (gid, rid) on this node joins the node's index before its
  // 101 is sent, and the Group's node has counted it when this returns, so no cast sent after
  // the client sees its socket open can miss it. `local` is the Replica's socket (a Replica on
  // this node), or `relay` the relay to a Replica elsewhere; `key` identifies the entry.
  Task<void> attach_client(Namespace& group_ns, std::string gid, std::string group_node, std::string rid,
                           std::weak_ptr<Socket> local, std::weak_ptr<EntryRelay> relay, const void* key);
  void detach_client(const std::string& gid, const std::string& rid, const void* key);
  void subscribe(const std::string& gid, const std::string& rid, const std::string& node, int delta,
                 bool absolute = false);
  // This node refuted an accusation: peers may have declared it dead meanwhile and forgotten its
  // Replicas and sockets. Re-asserts both to their Groups' nodes (idempotent: absolute counts).
  void reassert();
  // Slot release at the Group, wherever it lives (fire and forget). Empty `rid` and `empty`
  // set: the Replica is gone, forget it.
  void release_slot(Namespace& group_ns, const std::string& gid, const std::string& group_node,
                    const std::string& sid, const std::string& rid, bool empty);
  // The Group's other Replicas with their nodes.
  std::vector<std::pair<std::string, std::string>> group_peers(Namespace& group_ns, const std::string& gid,
                                                               const std::string& sid);
  // Membership: `node` is gone; forget what lived there, close relays to it with 1012, and
  // rebuild the Groups it hosted from the Replicas here.
  void node_gone(const std::string& node);
  // Directory: `host` holds a live activation of `hex` (an object this node owns the id of).
  // False if this node holds one too: the caller's copy must go (a Group is handed over with
  // hand_over_group; any other object is retired with retire_duplicate).
  bool register_host(const std::string& hex, const std::string& host);
  // Two activations of the non-Group object `hex` (a partition healed): the id's owner `owner`
  // keeps its copy. Ours leaves this node's tables at once (requests here go to `owner`), its
  // sockets are closed with 1012 so their clients reconnect to the kept copy, and it is
  // destroyed when its last socket and request are done. Its state is not merged.
  void retire_duplicate(Namespace& ns, const std::string& hex, const std::string& owner);
  // Where this node knows a live activation of `hex` to be: self, a registered host, or "".
  std::string known_host(const std::string& hex) const;
  // Gives the Group `gid` (hosted here) to `to` with its state: each Replica's slots and request
  // ids, and which nodes hold its sockets. Afterwards this node forwards what still reaches it.
  void hand_over_group(Namespace& group_ns, const std::string& gid, const std::string& to);
  // Failover: the Replica `sid` on `host` belongs to Group `gid`, whose node died; this node
  // owns the Group's id now and re-creates it with the Replica's slot counts.
  void adopt_replica(Namespace& group_ns, const std::string& gid, const std::string& child_ns,
                     const std::string& sid, const std::string& host, int count,
                     const std::vector<std::string>& rids);
  // The routing view changed: tell the new owners of ids whose objects live here.
  void view_changed();
  // The Group's other Replicas with their nodes, asked of the Group's node.
  Task<std::vector<std::pair<std::string, std::string>>> fetch_peers(Namespace& group_ns, const std::string& gid,
                                                                     const std::string& group_node,
                                                                     const std::string& sid);
  // One peer's ongossip on another node.
  Task<Json> gossip_remote(const std::string& node, Namespace& child, const std::string& sid, const Json& msg,
                           std::chrono::milliseconds deadline);
  // A new Replica id for `child`, placed on the less loaded of two nodes.
  ObjectId place_new(const Namespace& child) const;
  // Relays: the entry node keeps the client sinks it serves, by Replica node, to close them
  // with 1012 when that node dies.
  void track_relay(const std::string& node, const std::shared_ptr<EntryRelay>& r);

  // Instances, created on first use (two-phase: construct, set uid, link).
  std::shared_ptr<Group> group(Namespace& ns, const std::string& hex);
  // The Group `hex`, re-created here after its node died (a subscription or report reached its
  // new owner first): until every survivor has re-subscribed, casts reach every member.
  void group_rebuilt(Namespace& ns, const std::string& hex);
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
  std::vector<std::string> replica_ids(const Namespace& ns) const;
  size_t group_count(const Namespace& ns) const;
  // The other Replicas of `hex`'s Group (from the Group's bookkeeping; local Groups only).
  std::vector<std::string> neighbors(Namespace& ns, const std::string& hex);
  std::string group_of(Namespace& ns, const std::string& hex);
  size_t evict_all_idle();

  // For the admin endpoint (node/admin/): the namespace bindings, and the objects of one that
  // are live on this node. A Group's `sockets` counts its client sockets on every node (what
  // its subscriptions say); a Replica's, the sockets in its pool here.
  std::vector<std::string> namespace_names() const;
  struct LiveObject {
    std::string id;
    std::string group;       // a Replica's Group ("" for a Group, or a Replica made without one)
    std::string group_node;  // where that Group lives
    size_t sockets = 0;
    size_t replicas = 0;     // a Group's Replicas
  };
  std::vector<LiveObject> live_objects(const Namespace& ns) const;

  static std::string serialize(const Json& msg);
  // Counters, for tests and metrics.
  struct Stats {
    uint64_t casts_sent = 0;        // groupCast/deliverCast calls sent to other nodes
    uint64_t casts_to_all = 0;      // casts of a Group being rebuilt, sent to every member
    uint64_t casts_delivered = 0;   // socket deliveries made by deliver_cast
    uint64_t reroutes = 0;          // "not here" answers followed
    uint64_t relays_closed_1012 = 0;
    uint64_t duplicates_retired = 0;  // copies of non-Group objects retired for the owner's
    uint64_t remote_errors = 0;
    uint64_t objects_refused = 0;   // creations refused at RuntimeConfig::max_live_objects
    // Objects created and idle-evicted on this node, by namespace binding (/metrics).
    std::map<std::string, uint64_t, std::less<>> activated, evicted;
  };
  const Stats& stats() const { return stats_; }
  // This node's fan-out overload policy: publishers held while receivers are behind.
  FanoutPressure& fanout() { return fanout_; }
  // False once the runtime is destroyed (for callbacks that may outlive it).
  std::shared_ptr<bool> alive_flag() const { return alive_; }
  Stats& mutable_stats() { return stats_; }

 private:
  struct GroupHost {
    std::shared_ptr<Group> obj;
    Namespace* child = nullptr;
    runtime::GroupCore core;
    bool identifying = false;                              // identify is atomic per Group
    int inflight = 0;                                      // requests in the Group's receive
    std::deque<std::shared_ptr<asio::steady_timer>> waiters;
    std::unordered_map<std::string, std::string> replica_node;  // sid -> node it lives on
    // node -> request id -> client sockets that node holds (who a cast must reach)
    std::map<std::string, std::map<std::string, int>> subscribers;
    // Until then `subscribers` may be incomplete (the Group is being rebuilt from reports that
    // are still in flight): casts go to every member, each delivering to its own sockets.
    std::chrono::steady_clock::time_point cast_all_until{};
  };
  // A Group host being rebuilt after a failover: casts reach every member for a while.
  void mark_rebuilding(GroupHost& h);
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
  // Throws HttpError(503) when `live` objects of `ns` are the cap.
  void refuse_over_cap(const Namespace& ns, size_t live);
  // A Group with no Replicas and nothing in flight holds nothing worth keeping: it is dropped,
  // so client-chosen group names cannot grow memory without bound.
  void maybe_evict_group(Namespace& group_ns, const std::string& gid);
  Task<void> lock_identify(GroupHost& host);
  friend struct Replica::State;
  friend class Replica;
  void unlock_identify(GroupHost& host);
  void arm_claim_timeout(const std::shared_ptr<Stub::Identity>& id, Namespace& child, const std::string& sid);

  // remote.cc: calls to other nodes.
  struct FetchOutcome {
    Response response;
    std::string not_here;  // set instead of a response: the node to try
  };
  Task<IdentifyAnswer> identify_remote(const std::string& node, const Family& family, const std::string& gid,
                                       const std::string& rid);
  Task<FetchOutcome> fetch_remote(const std::string& node, Namespace& ns, const std::string& hex, Request& req,
                                  std::shared_ptr<Stub::Identity> route);
  // Sends without awaiting; failures are counted and logged (membership handles dead peers).
  template <typename Fn>
  void fire(const std::string& node, Fn&& fn);
  template <typename Fn>
  void fire_retry(const std::string& node, Fn fn, int attempts = 6);
  void send_cast(const std::string& gid, const std::string& group_node, Namespace& group_ns,
                 rpc::wire::CastKind kind, const std::string& sender, bool self_too, const std::string& target,
                 const std::string& body);
  GroupHost* find_group(const std::string& gid);
  // The node a Group that is not here moved to (directory), or "".
  std::string moved_to(const std::string& gid) const;
  // Before activating an id this node owns but does not know: ask its previous owner.
  Task<std::string> ask_previous_owner(const Namespace& ns, const std::string& hex);
  void forget_replica_at_group(Namespace& group_ns, const std::string& gid, const std::string& sid);
  void register_with_owner(Namespace& ns, bool is_group, const std::string& hex, const std::string& owner,
                           int attempts);

  node::Loop& loop_;
  RuntimeConfig config_;
  ClusterPort* cluster_ = nullptr;
  std::string self_;
  Env env_;
  std::map<std::string, Class, std::less<>> classes_;
  // The directory: objects whose ids this node owns but which live elsewhere (registrations, a
  // previous owner's answer, a Group handed over): hex -> node. Entries leave when the host
  // unregisters the object (it was evicted) or dies.
  std::unordered_map<std::string, std::string> directory_;
  // Where this node last reached objects it does not own (a cache: clients choose the ids, so it
  // is capped and simply cleared when full). hex -> node.
  std::unordered_map<std::string, std::string> routes_;
  static constexpr size_t kMaxRoutes = 1 << 16;
  void remember_route(const std::string& hex, const std::string& node);
  // The object `hex` of `ns` is no longer live here: tell its owner's directory.
  void unregister(const Namespace& ns, const std::string& hex);
  // Entry side: client sockets by Group, for deliver_cast.
  struct Client {
    std::string rid;
    std::weak_ptr<Socket> local;
    std::weak_ptr<EntryRelay> relay;
    const void* key = nullptr;
  };
  struct ClientGroup {
    std::string group_node;
    Namespace* group_ns = nullptr;
    std::vector<Client> clients;                 // unordered: detach swaps the last one in
    std::unordered_map<const void*, size_t> at;  // key -> index in `clients`
  };
  std::unordered_map<std::string, ClientGroup> clients_;
  std::multimap<std::string, std::weak_ptr<EntryRelay>> relays_;  // by Replica node
  Stats stats_;
  FanoutPressure fanout_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dog
