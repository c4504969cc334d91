// dog/dog.h — Durable Object Groups in C++20.
//
// A Group sends each request or WebSocket to a Replica; a Replica holds at most `limit` live
// connections and the Group creates new ones as needed. Replicas talk to clients (`emit` to
// their own sockets, `broadcast` to every socket in the group, `whisper` to one request id) and
// to each other (`gossip`). See docs/semantics.md for the exact behaviour and where it differs
// from Cloudflare's DOG.
//
// Coroutine arguments are taken by value wherever a call may outlive its caller's
// temporaries (e.g. when a Task is spawned rather than awaited at once).
//
// Concurrency contract (the Durable Objects model)
// ------------------------------------------------
// * Each object (Group or Replica) lives on one loop and sees one event at a time: a request, a
//   WebSocket message, a close, a gossip call. Events interleave only at `co_await` points; code
//   between two awaits runs without interruption, so plain member fields need no locks.
// * `identify` is atomic within a Group: concurrent identifies of one Group are serialised, even
//   when a user `clusterize` awaits.
// * Hooks may throw. An exception is logged and becomes a 500 (requests) or a 1011 close
//   (sockets); it never takes the node down.
// * Objects are created on first use, two-phase: the runtime constructs your class with its
//   default constructor, fills in `uid`, then calls `link(env)`. Do not touch runtime state in
//   your constructor.
#pragma once

#include <asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dog/http.h"
#include "dog/websocket.h"

namespace CLI {
class App;
}

namespace dog {

namespace routing {
class ObjectId;
}

using Request = http::Request;
using Response = http::Response;
using Json = nlohmann::json;
template <typename T>
using Task = asio::awaitable<T>;

class Runtime;
class Namespace;
class Replica;

// 256-bit object id; `to_string()` gives 64 hex characters.
class ObjectId {
 public:
  ObjectId() = default;
  std::string to_string() const { return hex_; }
  const std::string& hex() const { return hex_; }
  friend bool operator==(const ObjectId&, const ObjectId&) = default;
  friend auto operator<=>(const ObjectId&, const ObjectId&) = default;

 private:
  friend class Namespace;
  friend class Runtime;
  explicit ObjectId(std::string hex) : hex_(std::move(hex)) {}
  std::string hex_;
};

// Throw from any handler or hook to answer a request with `status` and `message` as the body.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// Thrown by Namespace::id_from_string for a malformed id or an id of another namespace.
class BadId : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A handle on one object. `fetch` reaches the single live instance of its id, creating it on
// first use, wherever it lives in the cluster (one hop once the route is known).
class Stub {
 public:
  const ObjectId& id() const { return id_; }
  Task<Response> fetch(Request& req);

 private:
  friend class Namespace;
  friend class Runtime;
  friend Task<Stub> identify(ObjectId, std::string, struct Family);
  Runtime* runtime_ = nullptr;
  Namespace* ns_ = nullptr;
  ObjectId id_;
  std::string node_;  // where identify said the object lives ("" = ask the cluster)
  // Set on stubs returned by identify(): the request id, the Group, and the claim on the
  // connection slot identify reserved. (Runtime-internal.)
 public:
  struct Identity;

 private:
  std::shared_ptr<Identity> identity_;
};

// The objects of one registered class (a "binding" in `env`).
class Namespace {
 public:
  const std::string& name() const { return name_; }
  ObjectId id_from_name(std::string_view name) const;
  ObjectId new_unique_id() const;
  // Throws BadId with a message naming what is wrong.
  ObjectId id_from_string(std::string_view hex) const;
  // Non-throwing form: std::nullopt and `error` set on bad input.
  std::optional<ObjectId> parse_id(std::string_view hex, std::string* error = nullptr) const;
  Stub get(const ObjectId& id);

 private:
  friend class Runtime;
  friend Task<Stub> identify(ObjectId, std::string, struct Family);
  Namespace(Runtime& rt, std::string name);
  Runtime& runtime_;
  std::string name_;
  std::shared_ptr<const void> keys_;  // routing::IdNamespace, hidden
};

// The bindings user code sees, by name ("LOBBY", "ROOM", ...).
class Env {
 public:
  Namespace& operator[](std::string_view binding) const;  // throws std::out_of_range
  bool has(std::string_view binding) const;

 private:
  friend class Runtime;
  explicit Env(Runtime& rt) : runtime_(rt) {}
  Runtime& runtime_;
};

struct Family {
  Namespace& parent;  // the Group namespace
  Namespace& child;   // the Replica namespace
};

// Routes `request_id` to a Replica of the Group `group_id` and returns its stub. Every call
// reserves one connection slot (DOG's rule); the stub's first fetch claims it, and an unclaimed
// slot is released after RuntimeConfig::identify_claim_timeout.
Task<Stub> identify(ObjectId group_id, std::string request_id, Family family);

class Group {
 public:
  virtual ~Group() = default;

  // Most live connections per Replica, read on every identify. <= 0: every identify creates a
  // new Replica (DOG's behaviour).
  int limit = 50;

  // This Group's id.
  const std::string& uid() const { return uid_; }

  // Names the Replica namespace. Called once, after construction.
  virtual Namespace& link(Env& env) = 0;

  // Chooses the id of a new Replica. Default: a new unique id of the child namespace. May await.
  // `req` is the identify request: path "/~$~/identify" and the x-dog-* headers.
  virtual Task<ObjectId> clusterize(Request& req, Namespace& child);

  // Requests sent to the Group's own stub. Default: 404 "Not Found".
  virtual Task<Response> receive(Request& req);

 private:
  friend class Runtime;
  std::string uid_;
};

// One WebSocket connection, as Replica hooks see it.
class Socket {
 public:
  // The request id this socket was identified with.
  const std::string& uid() const { return uid_; }
  // Sends to this connection only. Before the upgrade completes (inside onopen) the message is
  // queued and sent right after the 101.
  void send(const Json& msg);
  void close(uint16_t code = 1000, std::string_view reason = {});
  // Every socket on this Replica except the sender's request id (all of its sockets), unless
  // `self`.
  void emit(const Json& msg, bool self = false);
  // Every socket in the group except the sender's request id, unless `self`, which then
  // includes all of the sender's sockets on every Replica (a fix over DOG).
  Task<void> broadcast(Json msg, bool self = false);
  // Every socket of `target` in the group. A whisper to your own request id is a no-op.
  Task<void> whisper(std::string target, Json msg);

 private:
  friend class Replica;
  friend class Runtime;
  friend class SocketAdapter;
  Replica* replica_ = nullptr;
  std::string uid_;
  std::shared_ptr<http::WebSocket> ws_;
  // Sends an already serialized text message; with `frames` (the same message encoded once for
  // every recipient on this node) an open socket queues a reference instead of a copy.
  void send_text(std::string body);
  void send_text(std::string_view body, const http::SharedFrames& frames);
  std::vector<std::string> pending_;  // sends before the upgrade completed
  bool closing_ = false;
  bool indexed_ = false;  // in the node's socket index (a client on this node)
  uint16_t close_code_ = 1000;
  std::string close_reason_;
};

// One peer's answer to gossip(): a value, or an error (timeout, missing handler, exception).
struct GossipResult {
  std::string peer;
  std::optional<Json> value;
  std::string error;
  bool ok() const { return value.has_value(); }
};

class Replica {
 public:
  virtual ~Replica() = default;

  const std::string& uid() const { return uid_; }

  // Names the Group namespace. Called once, after construction.
  virtual Namespace& link(Env& env) = 0;

  // Every request routed here (internal traffic never reaches it).
  virtual Task<Response> receive(Request& req) = 0;

  // Performs the WebSocket upgrade: 405 unless GET, 426 unless `Upgrade: websocket`, 400 for a
  // bad key or version. Runs onopen before the 101; the socket joins the pool after onopen.
  Task<Response> connect(Request& req);

  virtual Task<void> onopen(Socket& socket) { co_return; }
  virtual Task<void> onmessage(Socket& socket, std::string_view data) { co_return; }
  virtual Task<void> onclose(Socket& socket) { co_return; }
  // Connection failures (no close frame, protocol errors). Default: onclose.
  virtual Task<void> onerror(Socket& socket) { co_await onclose(socket); }
  // Answers a peer's gossip. Default: throws, which the peer sees as an error result.
  virtual Task<Json> ongossip(const Json& msg);

  // Asks every peer Replica; one result per peer, each within `deadline`.
  Task<std::vector<GossipResult>> gossip(Json msg,
                                         std::chrono::milliseconds deadline = std::chrono::seconds(5));

  // HTTP-side senders, with this Replica's uid as the sender.
  void emit(const Json& msg);
  Task<void> broadcast(Json msg);
  Task<void> whisper(std::string target, Json msg);

  // Live sockets on this Replica.
  size_t connections() const;

  // The cluster node this Replica lives on (its --name), or "" on a single node.
  const std::string& node() const;

 private:
  friend class Runtime;
  friend class Socket;
  friend class SocketAdapter;
  struct State;
  std::string uid_;
  std::shared_ptr<State> state_;
};

struct RuntimeConfig {
  // An identify slot whose stub is never fetched is released after this. Default: 30 s.
  std::chrono::milliseconds identify_claim_timeout{30'000};
  // A Replica with no sockets and no requests in flight for this long is evicted and leaves its
  // Group and peers. Default: 5 min.
  std::chrono::milliseconds replica_idle_timeout{300'000};
  // Live objects (Groups, or Replicas) of one namespace on this node; a request that would
  // create one more is answered 503 (counted in Runtime::Stats::objects_refused), so client-
  // chosen names cannot grow a node's memory without bound. Default: 100,000.
  size_t max_live_objects = 100'000;
};

// The application: registered classes, the request handler, and the node that serves them.
class App {
 public:
  App();
  ~App();

  // Registers a class under a binding name ("LOBBY"). G derives from Group, R from Replica; both
  // need a default constructor.
  template <typename G>
  void group(std::string binding) {
    add_group(std::move(binding), [] { return std::shared_ptr<Group>(std::make_shared<G>()); });
  }
  template <typename R>
  void replica(std::string binding) {
    add_replica(std::move(binding), [] { return std::shared_ptr<Replica>(std::make_shared<R>()); });
  }

  // Same, with a factory: for classes that need constructor arguments (e.g. a limit from a flag).
  // The factory runs on the object's loop when the object is first used.
  void add_group(std::string binding, std::function<std::shared_ptr<Group>()> make);
  void add_replica(std::string binding, std::function<std::shared_ptr<Replica>()> make);

  // The Worker `fetch` of DOG: called for every request the node accepts.
  using Fetch = std::function<Task<Response>(Request&, Env&)>;
  void fetch(Fetch handler) { fetch_ = std::move(handler); }

  // The command line, for apps to add their own flags before run().
  CLI::App& cli();

  // Parses flags (--http HOST:PORT, ...) and serves until SIGINT/SIGTERM. Returns an exit code.
  int run(int argc, char** argv);

  RuntimeConfig config;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Fetch fetch_;
};

}  // namespace dog
