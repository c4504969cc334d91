#include "rpc/connection_manager.h"

#include <algorithm>

#include <kj/debug.h>

#include "node/asio_stream.h"
#include "rpc/framed_stream.h"
#include "rpc/manager_connection.h"

namespace dog::rpc {

using capnp::rpc::twoparty::Side;

class ConnectionManager::ErrorSink final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& e) override {
    // Task failures are handshake rejections and connection ends, already counted.
    (void)e;
  }
};

ConnectionManager::ConnectionManager(node::Loop& loop, const membership::Keyring& keyring,
                                     ManagerConfig config, wire::Node::Client local,
                                     membership::Rng& rng)
    : loop_(loop),
      keyring_(keyring),
      config_(kj::mv(config)),
      local_(kj::mv(local)),
      rng_(rng),
      error_sink_(kj::heap<ErrorSink>()),
      tasks_(kj::heap<kj::TaskSet>(*error_sink_)) {
  KJ_REQUIRE(config_.node_name.size() <= detail::kNameBytes, "node name too long");
  KJ_REQUIRE(config_.backoff_initial > 0 * kj::SECONDS);
  KJ_REQUIRE(config_.retire_poll > 0 * kj::SECONDS);
  KJ_REQUIRE(config_.key_check_interval > 0 * kj::SECONDS);
  KJ_REQUIRE(config_.channel.encrypt || detail::plaintext_allowed(),
             "dog-rpc: a plaintext channel is test-only (encrypt = false)");
}

ConnectionManager::~ConnectionManager() {
  *alive_ = false;
  if (acceptor_) {
    std::error_code ec;
    acceptor_->close(ec);
  }
  tasks_ = nullptr;
  pending_.clear();
  for (auto& [name, p] : peers_) {
    p->dialing = nullptr;
    p->canceler->cancel("connection manager destroyed");
  }
  conns_.clear();
}

void ConnectionManager::set_on_disconnect(std::function<void(const std::string& peer)> fn) {
  on_disconnect_ = std::move(fn);
}

ConnectionManager::Peer& ConnectionManager::peer_entry(const std::string& peer) {
  auto& slot = peers_[peer];
  if (!slot) {
    slot = std::make_unique<Peer>();
    slot->name = peer;
  }
  return *slot;
}

ConnectionManager::Connection* ConnectionManager::find(uint64_t id) const {
  if (id == 0) return nullptr;
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : const_cast<Connection*>(it->second.get());
}

void ConnectionManager::add_peer(const std::string& peer, asio::ip::tcp::endpoint endpoint) {
  peer_entry(peer).endpoint = endpoint;
}

void ConnectionManager::mark_dead(const std::string& peer) {
  Peer& p = peer_entry(peer);
  p.dead = true;
  p.dialing = nullptr;
  p.canceler->cancel(peer_dead(peer));
  // Every connection to it goes, duplicates included.
  std::vector<uint64_t> ids;
  for (auto& [id, c] : conns_) {
    if (c->peer == peer) ids.push_back(id);
  }
  for (uint64_t id : ids) close_connection(id);
}

void ConnectionManager::mark_alive(const std::string& peer) {
  Peer& p = peer_entry(peer);
  p.dead = false;
  p.failures = 0;
  p.next_dial = kj::origin<kj::TimePoint>();
}

kj::Maybe<kj::Exception> ConnectionManager::admit(const std::string& peer) {
  Peer& p = peer_entry(peer);
  if (p.dead) {
    ++stats_.refused_dead;
    return peer_dead(peer);
  }
  if (p.in_flight >= config_.max_in_flight_per_peer) {
    ++stats_.refused_overloaded;
    return too_many_in_flight(peer);
  }
  Connection* c = find(p.conn);
  if (c != nullptr && c->network.getCurrentQueueSize() > config_.max_queued_bytes / 2) {
    ++stats_.refused_queue;
    return queue_full(peer);
  }
  if (c == nullptr && p.dialing == nullptr && loop_.timer().now() < p.next_dial) {
    ++stats_.refused_backoff;
    return in_backoff(peer);
  }
  return nullptr;
}

kj::Promise<wire::Node::Client> ConnectionManager::remote_of(Connection& c) {
  if (c.remote_ready) return c.remote;
  return c.ready.addBranch().then([this, id = c.id]() -> kj::Promise<wire::Node::Client> {
    Connection* now = find(id);
    if (now == nullptr) return disconnected("connection closed before the peer's Node arrived");
    return now->remote;
  });
}

kj::Promise<wire::Node::Client> ConnectionManager::client(const std::string& peer) {
  Peer& p = peer_entry(peer);
  if (p.dead) return peer_dead(peer);
  if (Connection* c = find(p.conn)) return remote_of(*c);
  if (p.dialing == nullptr) {
    if (loop_.timer().now() < p.next_dial) return in_backoff(peer);
    p.dialing = dial(p).fork();
  }
  KJ_IF_MAYBE(d, p.dialing) {
    return d->addBranch().then([this, &p]() -> kj::Promise<wire::Node::Client> {
      if (p.dead) return peer_dead(p.name);
      Connection* c = find(p.conn);
      if (c == nullptr) return disconnected("connection closed right after dialling");
      return remote_of(*c);
    });
  }
  KJ_UNREACHABLE;
}

kj::Promise<void> ConnectionManager::dial(Peer& p) {
  if (!p.endpoint) return disconnected("no address for peer " + p.name);
  ++stats_.dials;
  auto connected =
      node::connect_stream(loop_.io(), *p.endpoint)
          .exclusiveJoin(loop_.timer().afterDelay(config_.connect_timeout).then(
              [this, &p]() -> kj::Promise<kj::Own<kj::AsyncIoStream>> {
                ++stats_.dial_timeouts;
                return connect_timed_out(p.name);
              }));
  return connected
      .then([this](kj::Own<kj::AsyncIoStream> s) {
        return secure_connect(kj::mv(s), keyring_, config_.node_name, loop_.timer(),
                              config_.channel, stats_.channel);
      })
      .then([this, &p](SecureSession session) -> kj::Promise<SecureSession> {
        // Reaching another node (a stale address, a restarted host) is a failed dial like
        // any other: it backs off below instead of being retried at once.
        if (session.peer_name != p.name) {
          ++stats_.wrong_node;
          return wrong_node(p.name, session.peer_name);
        }
        return kj::mv(session);
      })
      .then(
          [this, &p](SecureSession session) {
            clear_dialing(p);
            p.failures = 0;
            Connection& c = adopt(kj::mv(session), Side::CLIENT);
            settle(p, c);
          },
          [this, &p](kj::Exception&& e) {
            clear_dialing(p);
            ++stats_.dial_failures;
            ++p.failures;
            // initial * 2^(failures-1), capped, jitter in [0.5, 1).
            kj::Duration d = config_.backoff_initial;
            for (uint32_t i = 1; i < p.failures && d < config_.backoff_max; ++i) d = d * 2;
            if (d > config_.backoff_max) d = config_.backoff_max;
            const double jitter = 0.5 + 0.5 * rng_.unit();
            const int64_t ns = static_cast<int64_t>(static_cast<double>(d / kj::NANOSECONDS) * jitter);
            p.next_dial = loop_.timer().now() + ns * kj::NANOSECONDS;
            kj::throwFatalException(kj::mv(e));
          });
}

// The forked dial promise must not be dropped from inside its own continuation.
void ConnectionManager::clear_dialing(Peer& p) {
  tasks_->add(kj::evalLater([&p] { p.dialing = nullptr; }));
}

ConnectionManager::Connection& ConnectionManager::adopt(SecureSession session, Side side) {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = config_.traversal_limit_words;
  options.nestingLimit = config_.nesting_limit;
  const uint64_t id = ++next_conn_id_;
  auto own = kj::heap<Connection>(
      id, kj::mv(session), side, options, local_, config_.incoming_flow_limit_bytes / 8,
      config_.max_queued_bytes, stats_, [this, id, alive = alive_] {
        if (!*alive) return;
        tasks_->add(kj::evalLater([this, id] { close_connection(id); }));
      });
  Connection& c = *own;
  conns_.emplace(id, kj::mv(own));
  start_key_sweep();
  tasks_->add(c.network.onDisconnect().then([this, id] { close_connection(id); }));
  return c;
}

// One connection per pair. When a second one appears (both nodes dialled at once, or the peer
// re-dialled while we still hold its old connection), both nodes keep the connection dialled by
// the node whose name sorts first; on a tie (both dialled by the same node) the newer one wins,
// since the older is the likely half-open one. The loser takes no new calls and is closed once
// it is idle (retire_later).
void ConnectionManager::settle(Peer& p, Connection& c) {
  Connection* current = find(p.conn);
  if (current == nullptr) {
    p.conn = c.id;
    return;
  }
  auto preferred = [&](const Connection& x) {
    return x.dialled_by_me() ? config_.node_name < p.name : p.name < config_.node_name;
  };
  Connection* loser = &c;
  if (preferred(c) || !preferred(*current)) {
    loser = current;
    p.conn = c.id;
  }
  ++stats_.duplicates;
  loser->retiring = true;
  retire_later(loser->id, config_.retire_grace);
}

// A duplicate is closed only when nothing uses it: calls in flight either way and capabilities
// obtained over it (a relayed WebSocket's sinks, a streamed body) all keep it open.
void ConnectionManager::retire_later(uint64_t id, kj::Duration after) {
  tasks_->add(loop_.timer().afterDelay(after).then([this, id] {
    ++stats_.retire_checks;
    Connection* c = find(id);
    if (c == nullptr) return;  // already gone (by id: a newer connection is never touched)
    if (c->policy->in_use() > 0) {
      ++stats_.retire_deferred;
      retire_later(id, config_.retire_poll);
      return;
    }
    ++stats_.retired;
    close_connection(id);
  }));
}

// Runs only while connections exist, so an idle manager arms no timer.
void ConnectionManager::start_key_sweep() {
  if (key_sweep_running_) return;
  key_sweep_running_ = true;
  tasks_->add(loop_.timer().afterDelay(config_.key_check_interval).then([this] {
    key_sweep_running_ = false;
    std::vector<uint64_t> stale;
    for (auto& [id, c] : conns_) {
      if (!detail::session_key_installed(*c->stream)) stale.push_back(id);
    }
    for (uint64_t id : stale) {
      ++stats_.key_expired;
      close_connection(id);
    }
    if (!conns_.empty()) start_key_sweep();
  }));
}

void ConnectionManager::close_connection(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  auto own = kj::mv(it->second);
  conns_.erase(it);
  ++stats_.disconnects;
  const std::string peer = own->peer;
  auto pit = peers_.find(peer);
  if (pit != peers_.end() && pit->second->conn == id) pit->second->conn = 0;
  // The close frame goes out first (its flush is queued before the destruction below), so
  // the peer sees a clean end rather than a cut.
  own->stream->shutdownWrite();
  tasks_->add(kj::evalLater([own = kj::mv(own)] {}));  // not from inside its own callback
  if (connection_count(peer) == 0) {
    tasks_->add(kj::evalLater([this, peer] {
      if (on_disconnect_) on_disconnect_(peer);
    }));
  }
}

uint16_t ConnectionManager::listen(asio::ip::tcp::endpoint endpoint) {
  acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(loop_.io(), endpoint);
  accept_loop();
  return acceptor_->local_endpoint().port();
}

void ConnectionManager::accept_loop() {
  acceptor_->async_accept([this, alive = alive_](std::error_code ec, asio::ip::tcp::socket s) {
    if (!*alive || ec == asio::error::operation_aborted) return;
    if (ec) {
      // EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays in the backlog, so an
      // immediate retry fails the same way and spins the loop. Pause, then accept again.
      ++stats_.accept_errors;
      tasks_->add(loop_.timer().afterDelay(config_.accept_retry_delay).then([this, alive] {
        if (*alive && acceptor_ && acceptor_->is_open()) accept_loop();
      }));
      return;
    }
    accept(std::move(s));
    accept_loop();
  });
}

void ConnectionManager::accept(asio::ip::tcp::socket socket) {
  if (!*alive_) return;
  ++stats_.accepted;
  // At the cap, the oldest pending handshake goes: a flood of silent connections then costs
  // the attacker its own slots, while a real dial (which answers within a round trip) still
  // gets through.
  while (!pending_.empty() && pending_.size() >= config_.max_pending_handshakes) {
    auto oldest = pending_.begin();
    auto evict = kj::mv(oldest->second);
    pending_.erase(oldest);
    ++stats_.evicted_handshakes;
    evict->fulfill();
  }
  const uint64_t id = ++next_handshake_id_;
  auto evicted = kj::newPromiseAndFulfiller<void>();
  pending_.emplace(id, kj::mv(evicted.fulfiller));
  auto hs = secure_accept(node::wrap_socket(std::move(socket)), keyring_, config_.node_name,
                          loop_.timer(), config_.channel, stats_.channel, replay_window_)
                .exclusiveJoin(evicted.promise.then([]() -> kj::Promise<SecureSession> {
                  return KJ_EXCEPTION(DISCONNECTED, "dog-rpc: handshake evicted by newer ones");
                }))
                .attach(kj::defer([this, alive = alive_, id] {
                  if (*alive) pending_.erase(id);
                }));
  tasks_->add(hs.then([this](SecureSession session) {
    std::string name = session.peer_name;
    Connection& c = adopt(kj::mv(session), Side::SERVER);
    Peer& p = peer_entry(name);
    if (p.dead) {
      close_connection(c.id);
      return;
    }
    settle(p, c);
  }));
}

size_t ConnectionManager::connection_count() const { return conns_.size(); }

size_t ConnectionManager::connection_count(const std::string& peer) const {
  size_t n = 0;
  for (auto& [id, c] : conns_) n += c->peer == peer ? 1 : 0;
  return n;
}

size_t ConnectionManager::queued_bytes(const std::string& peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return 0;
  Connection* c = find(it->second->conn);
  return c == nullptr ? 0 : c->network.getCurrentQueueSize();
}

bool ConnectionManager::connected(const std::string& peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && find(it->second->conn) != nullptr;
}

uint32_t ConnectionManager::in_flight(const std::string& peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second->in_flight;
}

kj::Duration ConnectionManager::backoff_remaining(const std::string& peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return 0 * kj::SECONDS;
  auto now = loop_.timer().now();
  return it->second->next_dial > now ? it->second->next_dial - now : 0 * kj::SECONDS;
}

}  // namespace dog::rpc
