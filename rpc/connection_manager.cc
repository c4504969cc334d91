#include "rpc/connection_manager.h"

#include <algorithm>

#include <kj/debug.h>

#include "node/asio_stream.h"

namespace dog::rpc {

using capnp::rpc::twoparty::Side;

struct ConnectionManager::Connection {
  Connection(SecureSession session, Side side, capnp::ReaderOptions options,
             wire::Node::Client local, size_t flow_limit_words)
      : stream(kj::mv(session.stream)),
        peer(kj::mv(session.peer_name)),
        dialled(side == Side::CLIENT),
        network(*stream, side, options),
        rpc(capnp::makeRpcServer(network, kj::mv(local))) {
    rpc.setFlowLimit(flow_limit_words);
    capnp::MallocMessageBuilder msg(8);
    auto vat = msg.initRoot<capnp::rpc::twoparty::VatId>();
    vat.setSide(side == Side::CLIENT ? Side::SERVER : Side::CLIENT);
    remote = rpc.bootstrap(vat).castAs<wire::Node>();
  }

  kj::Own<kj::AsyncIoStream> stream;
  std::string peer;
  bool dialled_by_me() const { return dialled; }
  bool dialled;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
  wire::Node::Client remote = nullptr;
};

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
}

ConnectionManager::~ConnectionManager() {
  *alive_ = false;
  if (acceptor_) {
    std::error_code ec;
    acceptor_->close(ec);
  }
  tasks_ = nullptr;
  for (auto& [name, p] : peers_) {
    p->dialing = nullptr;
    p->canceler->cancel("connection manager destroyed");
  }
  conns_.clear();
}

ConnectionManager::Peer& ConnectionManager::peer_entry(const std::string& peer) {
  auto& slot = peers_[peer];
  if (!slot) {
    slot = std::make_unique<Peer>();
    slot->name = peer;
  }
  return *slot;
}

void ConnectionManager::add_peer(const std::string& peer, asio::ip::tcp::endpoint endpoint) {
  peer_entry(peer).endpoint = endpoint;
}

void ConnectionManager::mark_dead(const std::string& peer) {
  Peer& p = peer_entry(peer);
  p.dead = true;
  p.dialing = nullptr;
  p.canceler->cancel(peer_dead(peer));
  if (p.conn != nullptr) {
    Connection* c = p.conn;
    p.conn = nullptr;
    auto it = conns_.find(c);
    if (it != conns_.end()) {
      auto own = kj::mv(it->second);
      conns_.erase(it);
      ++stats_.disconnects;
      tasks_->add(kj::evalLater([own = kj::mv(own)] {}));
    }
  }
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
  if (p.conn == nullptr && p.dialing == nullptr && loop_.timer().now() < p.next_dial) {
    ++stats_.refused_backoff;
    return in_backoff(peer);
  }
  return nullptr;
}

kj::Promise<wire::Node::Client> ConnectionManager::client(const std::string& peer) {
  Peer& p = peer_entry(peer);
  if (p.dead) return peer_dead(peer);
  if (p.conn != nullptr) return p.conn->remote;
  if (p.dialing == nullptr) {
    if (loop_.timer().now() < p.next_dial) return in_backoff(peer);
    p.dialing = dial(p).fork();
  }
  KJ_IF_MAYBE(d, p.dialing) {
    return d->addBranch().then([this, &p]() -> kj::Promise<wire::Node::Client> {
      if (p.dead) return peer_dead(p.name);
      if (p.conn == nullptr) {
        return KJ_EXCEPTION(DISCONNECTED, "dog-rpc: connection closed right after dialling");
      }
      return p.conn->remote;
    });
  }
  KJ_UNREACHABLE;
}

kj::Promise<void> ConnectionManager::dial(Peer& p) {
  if (!p.endpoint) {
    return KJ_EXCEPTION(DISCONNECTED, "dog-rpc: no address for peer", p.name.c_str());
  }
  ++stats_.dials;
  return node::connect_stream(loop_.io(), *p.endpoint)
      .then([this](kj::Own<kj::AsyncIoStream> s) {
        return secure_connect(kj::mv(s), keyring_, config_.node_name, loop_.timer(),
                              config_.channel, stats_.channel);
      })
      .then(
          [this, &p](SecureSession session) {
            clear_dialing(p);
            p.failures = 0;
            if (session.peer_name != p.name) {
              ++stats_.dial_failures;
              kj::throwFatalException(KJ_EXCEPTION(DISCONNECTED,
                                                   "dog-rpc: dialled peer answered with another name",
                                                   p.name.c_str(), session.peer_name.c_str()));
            }
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
  auto own = kj::heap<Connection>(kj::mv(session), side, options, local_,
                                  config_.incoming_flow_limit_bytes / 8);
  Connection* c = own.get();
  conns_.emplace(c, kj::mv(own));
  tasks_->add(c->network.onDisconnect().then([this, c] { dropped(c); }));
  return *c;
}

// One connection per pair. When a second one appears (both nodes dialled at once, or the peer
// re-dialled while we still hold its old connection), both nodes keep the connection dialled by
// the node whose name sorts first; on a tie (both dialled by the same node) the newer one wins,
// since the older is the likely half-open one. The loser stops taking new calls now and is
// closed after `retire_grace`, so calls already on it can finish.
void ConnectionManager::settle(Peer& p, Connection& c) {
  if (p.conn == nullptr) {
    p.conn = &c;
    return;
  }
  auto preferred = [&](const Connection& x) {
    const bool dialled_by_smaller = x.dialled_by_me() ? config_.node_name < p.name
                                                      : p.name < config_.node_name;
    return dialled_by_smaller;
  };
  Connection* loser = &c;
  if (preferred(c) || !preferred(*p.conn)) {
    loser = p.conn;
    p.conn = &c;
  }
  ++stats_.retired;
  tasks_->add(loop_.timer().afterDelay(config_.retire_grace).then([this, loser] {
    auto it = conns_.find(loser);
    if (it == conns_.end()) return;  // already gone
    for (auto& [name, peer] : peers_) {
      if (peer->conn == loser) peer->conn = nullptr;
    }
    auto own = kj::mv(it->second);
    conns_.erase(it);
    ++stats_.disconnects;
    tasks_->add(kj::evalLater([own = kj::mv(own)] {}));
  }));
}

void ConnectionManager::dropped(Connection* c) {
  auto it = conns_.find(c);
  if (it == conns_.end()) return;
  ++stats_.disconnects;
  auto pit = peers_.find(c->peer);
  if (pit != peers_.end() && pit->second->conn == c) pit->second->conn = nullptr;
  auto own = kj::mv(it->second);
  conns_.erase(it);
  tasks_->add(kj::evalLater([own = kj::mv(own)] {}));  // not from inside its own callback
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
      dropped(&c);
      return;
    }
    settle(p, c);
  }));
}

size_t ConnectionManager::connection_count() const { return conns_.size(); }

bool ConnectionManager::connected(const std::string& peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second->conn != nullptr;
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
