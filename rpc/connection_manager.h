// dog::rpc::ConnectionManager: one authenticated Cap'n Proto connection per peer, opened lazily.
//
// Contract
// --------
// * Loop affinity: everything runs on one dog::node::Loop; not thread-safe.
// * Each node serves one `wire::Node` capability (`local`, a settled capability such as a
//   kj::heap'd server) to every peer, and calls the peers' through `call()`. Connections are
//   bidirectional: a peer that dialled us is used for our calls to it too, so a pair of nodes
//   shares one connection. If both dial at the same instant, both keep the connection dialled
//   by the node whose name sorts first. The other (the duplicate) takes no new calls and is
//   closed once `retire_grace` has passed AND nothing uses it: no call in flight either way and
//   no capability obtained over it still held by either side (a relayed WebSocket's sinks, a
//   streamed body). A duplicate that carries a relay is never closed under it; it is checked
//   again every `retire_poll` (docs/rpc.md, "Connections").
// * Connections are identified by a manager-local id that is never reused, never by address.
// * set_on_disconnect(fn): fn(peer) runs, from its own loop turn, each time the last open
//   connection to `peer` ends (broken, closed by the peer, mark_dead, queue overflow, or a
//   retired duplicate that was the last one). Relays and streams over it are gone by then.
// * `call(peer, deadline, fn)` gets the connected Node client (dialling if needed) and runs
//   `fn(client)`, which returns a promise. The result is rejected with:
//     - peer_dead (DISCONNECTED) at once, and for calls in flight, when `mark_dead(peer)` was
//       called (membership said so); `mark_alive(peer)` lifts it;
//     - in_backoff (DISCONNECTED) while a reconnect is backing off after a failed dial:
//       initial * 2^(failures-1), capped, times a jitter in [0.5, 1) from the injected Rng;
//     - too_many_in_flight (OVERLOADED) when `max_in_flight_per_peer` calls are outstanding;
//     - queue_full (OVERLOADED) while more than max_queued_bytes / 2 wait to be sent to it;
//     - connect_timed_out / wrong_node / a handshake rejection (DISCONNECTED) when the dial
//       fails; each failure, including reaching a node with another name, backs off;
//     - deadline_exceeded (OVERLOADED, ErrorKind::kDeadline) when `deadline` passes;
//     - whatever the peer or the connection raised (DISCONNECTED when it broke).
//   Dropping the returned promise cancels the call; Cap'n Proto tells the peer, which cancels
//   its side.
// * Limits on every reader: ReaderOptions{traversal_limit_words, nesting_limit} on each
//   connection (a larger message fails the connection: it is the max message size), the
//   channel's max frame size, and Cap'n Proto's flow limit on calls a peer may have in flight
//   against us (`incoming_flow_limit_bytes`).
// * Limit on every writer: Cap'n Proto queues outgoing messages without bound. A connection
//   with more than `max_queued_bytes` queued (a peer that stopped reading) is dropped; above
//   half of it, call() refuses new calls to that peer with OVERLOADED.
// * Key removal: a connection whose session was made under a cluster key that has since been
//   removed from the keyring ends: at its next frame, or within key_check_interval if idle.
// * Lifetime: destroy the manager before its Loop and its Keyring (a session checks that its
//   cluster key is still installed). Destroying it cancels every call.
#pragma once

#include <asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <capnp/rpc-twoparty.h>
#include <kj/async.h>

#include "membership/keyring.h"
#include "membership/rng.h"
#include "node/loop.h"
#include "rpc/dog.capnp.h"
#include "rpc/errors.h"
#include "rpc/secure_channel.h"

namespace dog::rpc {

struct ManagerConfig {
  std::string node_name;  // authenticated to peers by the handshake; <= 64 bytes
  ChannelConfig channel;
  // Largest message a peer may send us, in 8-byte words (capnp traversal limit; a message is
  // refused before it is parsed and the connection dropped). Default: 1 Mi words = 8 MiB.
  // Bigger payloads stream (ByteStream, RequestCall.write).
  uint64_t traversal_limit_words = 1ull << 20;
  int nesting_limit = 64;
  // Our own calls to one peer outstanding at once; beyond it, OVERLOADED. Default: 4096.
  uint32_t max_in_flight_per_peer = 4096;
  // Bytes of a peer's calls into us that may be unanswered before Cap'n Proto stops reading
  // from that connection (RpcSystem::setFlowLimit). Default: 16 MiB.
  size_t incoming_flow_limit_bytes = 16 << 20;
  // Dial backoff after a failure: initial * 2^(failures-1), capped, times jitter [0.5, 1).
  kj::Duration backoff_initial = 50 * kj::MILLISECONDS;
  kj::Duration backoff_max = 5 * kj::SECONDS;
  // A TCP connect that has not completed within this fails the dial (then backoff).
  // Default: 3 s. (The handshake after it has channel.handshake_timeout.)
  kj::Duration connect_timeout = 3 * kj::SECONDS;
  // A duplicate connection to a peer (simultaneous dials) takes no new calls; it is closed
  // after this grace once no call and no capability uses it, else checked every
  // `retire_poll`. Defaults: 10 s, 1 s.
  kj::Duration retire_grace = 10 * kj::SECONDS;
  kj::Duration retire_poll = 1 * kj::SECONDS;
  // Bytes Cap'n Proto may hold queued for one connection's socket. Above half, call() refuses
  // new calls to the peer (OVERLOADED); above all of it, the connection is dropped. Must exceed
  // the largest message we send. Default: 32 MiB.
  size_t max_queued_bytes = 32 << 20;
  // Inbound connections still in the handshake at once; a new one beyond it evicts the oldest
  // pending one (each is also bounded by channel.handshake_timeout). Default: 256.
  uint32_t max_pending_handshakes = 256;
  // After accept() fails (EMFILE, ENFILE, ENOBUFS...), the listener waits this long before
  // accepting again instead of spinning. Default: 100 ms.
  kj::Duration accept_retry_delay = 100 * kj::MILLISECONDS;
  // While connections exist, every this often each one whose session's cluster key has been
  // removed from the keyring is closed (busy ones also end at their next frame). Default: 1 s.
  kj::Duration key_check_interval = 1 * kj::SECONDS;
};

struct ManagerStats {
  uint64_t dials = 0;
  uint64_t dial_failures = 0;
  uint64_t accepted = 0;
  uint64_t disconnects = 0;
  uint64_t refused_dead = 0;
  uint64_t refused_overloaded = 0;
  uint64_t refused_backoff = 0;
  uint64_t deadlines = 0;
  uint64_t duplicates = 0;       // duplicate connections found by the one-per-pair rule
  uint64_t retired = 0;          // duplicates closed (idle after retire_grace)
  uint64_t retire_checks = 0;    // retire timers that fired
  uint64_t retire_deferred = 0;  // retire checks that found the duplicate still in use
  uint64_t dial_timeouts = 0;    // TCP connects that hit connect_timeout
  uint64_t wrong_node = 0;       // dials answered by a node with another name
  uint64_t refused_queue = 0;    // calls refused: too much queued to the peer
  uint64_t queue_overflows = 0;  // connections dropped: more than max_queued_bytes queued
  size_t queue_peak_bytes = 0;   // largest queue seen on any connection (sampled per read)
  uint64_t evicted_handshakes = 0;  // pending inbound handshakes closed to admit newer ones
  uint64_t accept_errors = 0;       // failed accept() calls on the listener (EMFILE...)
  uint64_t key_expired = 0;         // idle connections closed: their cluster key was removed
  ChannelStats channel;  // handshake and frame rejections
};

class ConnectionManager {
 public:
  ConnectionManager(node::Loop& loop, const membership::Keyring& keyring, ManagerConfig config,
                    wire::Node::Client local, membership::Rng& rng);
  ~ConnectionManager();
  ConnectionManager(const ConnectionManager&) = delete;
  ConnectionManager& operator=(const ConnectionManager&) = delete;

  // Where to dial `peer`. Re-adding updates the address for the next dial.
  void add_peer(const std::string& peer, asio::ip::tcp::endpoint endpoint);

  // Called (from its own loop turn) whenever the last open connection to `peer` ends. May call
  // back into the manager. Replaces any previous callback; an empty function unsets it.
  void set_on_disconnect(std::function<void(const std::string& peer)> fn);

  // Membership's verdicts. mark_dead drops the connection and fails calls in flight and new
  // calls fast until mark_alive.
  void mark_dead(const std::string& peer);
  void mark_alive(const std::string& peer);

  // Accepts peers on `endpoint` (port 0 picks one). Returns the bound port. Optional: a node
  // whose cluster port is owned by another transport hands connections over with accept().
  uint16_t listen(asio::ip::tcp::endpoint endpoint);

  // Takes over an inbound TCP connection accepted elsewhere (the cluster port's demultiplexer)
  // and runs the same path as listen()'s acceptor: the pending-handshake cap, the `accepted`
  // counter, the responder handshake, then adoption. The socket must be positioned at the
  // first byte of the peer's Hello1 (demultiplex by peeking, not reading), and must belong to
  // this manager's Loop. Never throws; a bad peer is counted in stats().channel.
  void accept(asio::ip::tcp::socket socket);

  // Optional: the client each call()'s `fn` receives goes through `decorator` first (the admin
  // endpoint times calls per method with it, node/admin/rpc_timing.h). Empty (the default): the
  // connection's client as is. Set it before calls are made.
  void set_client_decorator(std::function<wire::Node::Client(wire::Node::Client)> decorator) {
    decorator_ = std::move(decorator);
  }

  template <typename Fn>
  kj::PromiseForResult<Fn, wire::Node::Client> call(const std::string& peer,
                                                     kj::Duration deadline, Fn&& fn) {
    using R = kj::PromiseForResult<Fn, wire::Node::Client>;
    KJ_IF_MAYBE(e, admit(peer)) { return R(kj::mv(*e)); }
    Peer& p = *peers_.at(peer);
    ++p.in_flight;
    // The caller may hold the promise past the manager's life: touch the manager only while
    // `alive` says it exists.
    auto release = kj::defer([alive = alive_, &p] {
      if (*alive) --p.in_flight;
    });
    auto connected = client(peer);
    if (decorator_) connected = connected.then([this](wire::Node::Client c) { return decorator_(kj::mv(c)); });
    R work = p.canceler->wrap(connected.then(kj::fwd<Fn>(fn)));
    return work
        .exclusiveJoin(loop_.timer().afterDelay(deadline).then([this, alive = alive_]() -> R {
          if (*alive) ++stats_.deadlines;
          return deadline_exceeded();
        }))
        .attach(kj::mv(release));
  }

  // The connected Node client of `peer`, dialling if needed (no deadline, no in-flight cap:
  // prefer call()).
  kj::Promise<wire::Node::Client> client(const std::string& peer);

  bool connected(const std::string& peer) const;
  // Open connections, including duplicates not yet retired.
  size_t connection_count() const;
  // Open connections to `peer`, duplicates included.
  size_t connection_count(const std::string& peer) const;
  // Bytes Cap'n Proto holds queued for the adopted connection to `peer` (0 if none).
  size_t queued_bytes(const std::string& peer) const;
  uint32_t in_flight(const std::string& peer) const;
  // Time until the next dial may start; 0 when not backing off.
  kj::Duration backoff_remaining(const std::string& peer) const;
  const ManagerStats& stats() const { return stats_; }
  const std::string& name() const { return config_.node_name; }

 private:
  struct Connection;
  class UsePolicy;
  class GatedStream;
  struct Peer {
    std::string name;
    std::optional<asio::ip::tcp::endpoint> endpoint;
    bool dead = false;
    uint32_t in_flight = 0;
    uint32_t failures = 0;
    kj::TimePoint next_dial = kj::origin<kj::TimePoint>();
    uint64_t conn = 0;  // id of the adopted connection in conns_ (0: none)
    kj::Maybe<kj::ForkedPromise<void>> dialing;
    kj::Own<kj::Canceler> canceler = kj::heap<kj::Canceler>();
  };

  kj::Maybe<kj::Exception> admit(const std::string& peer);
  Peer& peer_entry(const std::string& peer);
  kj::Promise<void> dial(Peer& p);
  void clear_dialing(Peer& p);
  Connection& adopt(SecureSession session, capnp::rpc::twoparty::Side side);
  Connection* find(uint64_t id) const;
  kj::Promise<wire::Node::Client> remote_of(Connection& c);
  void settle(Peer& p, Connection& c);
  void retire_later(uint64_t id, kj::Duration after);
  void close_connection(uint64_t id);
  void accept_loop();
  void start_key_sweep();

  node::Loop& loop_;
  const membership::Keyring& keyring_;
  ManagerConfig config_;
  wire::Node::Client local_;
  membership::Rng& rng_;
  ManagerStats stats_;
  HandshakeReplayWindow replay_window_;
  std::map<std::string, std::unique_ptr<Peer>> peers_;
  std::map<uint64_t, kj::Own<Connection>> conns_;
  uint64_t next_conn_id_ = 0;
  bool key_sweep_running_ = false;
  std::function<void(const std::string&)> on_disconnect_;
  std::function<wire::Node::Client(wire::Node::Client)> decorator_;
  // Inbound handshakes in progress, oldest first; fulfilling one evicts it.
  std::map<uint64_t, kj::Own<kj::PromiseFulfiller<void>>> pending_;
  uint64_t next_handshake_id_ = 0;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  class ErrorSink;
  kj::Own<ErrorSink> error_sink_;
  kj::Own<kj::TaskSet> tasks_;  // last: destroyed first
};

}  // namespace dog::rpc
