// Replica, Socket and the WebSocket adapter between the front door and Replica hooks.
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>

#include "node/ops/log.h"
#include "node/runtime/relay.h"
#include "node/runtime/runtime.h"

namespace dog {

namespace {
Response abort_with(int status, std::string message = {}) {
  if (message.empty()) message = std::string(http::reason_phrase(status));
  auto r = Response::text(status, std::move(message));
  r.headers.set("Connection", "close");
  return r;
}

// RFC 6455 §4.1: the key is 16 bytes in base64, so 22 base64 characters and "==". Checked by
// hand: no regex ever runs on client input.
bool is_websocket_key(std::string_view k) {
  if (k.size() != 24 || k[22] != '=' || k[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    char c = k[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}
}  // namespace

// ---- Replica::State ------------------------------------------------------------------------

Replica::State::Entry* Replica::State::entry(std::string_view rid) {
  for (auto& e : pool)
    if (e.rid == rid) return &e;
  return nullptr;
}

void Replica::State::emit_local(std::string_view sender, const std::string& body, bool self_too) {
  // Snapshot: a send may close a socket, and closing edits the pool.
  std::vector<std::shared_ptr<Socket>> targets;
  for (auto& e : pool)
    if (self_too || e.rid != sender)
      for (auto& s : e.sockets) targets.push_back(s);
  for (auto& s : targets) s->send(body);
}

void Replica::State::broadcast(const std::string& sender, std::string body, bool self_too) {
  if (gid.empty() || !parent_ns) {  // not made by a Group: its own sockets are the whole group
    emit_local(sender, body, self_too);
    return;
  }
  // The self flag travels with the message (DOG drops it across Replicas).
  rt->send_cast(gid, group_node, *parent_ns, rpc::wire::CastKind::BROADCAST, sender, self_too, {}, std::move(body));
}

void Replica::State::whisper(const std::string& sender, const std::string& target, std::string body) {
  if (sender == target) return;  // DOG: whispering to yourself is a no-op
  if (gid.empty() || !parent_ns) {
    if (Entry* e = entry(target)) {
      auto targets = e->sockets;
      for (auto& s : targets) s->send(body);
    }
    return;
  }
  // Every socket of the target in the group, local and remote (DOG stops at a local hit).
  rt->send_cast(gid, group_node, *parent_ns, rpc::wire::CastKind::WHISPER, sender, false, target, std::move(body));
}

void Replica::State::add_socket(const std::shared_ptr<Socket>& s) {
  if (Entry* e = entry(s->uid())) {
    e->sockets.push_back(s);
  } else {
    pool.push_back({s->uid(), {s}});
  }
  if (idle_timer) idle_timer->cancel();
}

bool Replica::State::remove_socket(const std::shared_ptr<Socket>& s) {
  Entry* e = entry(s->uid());
  if (!e) return true;
  std::erase(e->sockets, s);
  if (!e->sockets.empty()) return false;
  std::erase_if(pool, [&](const Entry& x) { return x.rid == s->uid(); });
  return true;
}

void Replica::State::release(const std::string& rid, bool empty) {
  if (!parent_ns || gid.empty()) return;
  rt->release_slot(*parent_ns, gid, group_node, self->uid(), rid, empty);
}

int Replica::State::slots(std::vector<std::string>* rids) const {
  int count = inflight;
  for (const auto& e : pool) {
    count += static_cast<int>(e.sockets.size());
    if (rids) rids->push_back(e.rid);
  }
  return count;
}

void Replica::State::touch() {
  if (inflight > 0 || !pool.empty()) return;
  if (!idle_timer) idle_timer = std::make_unique<asio::steady_timer>(rt->loop().io());
  idle_timer->expires_after(rt->config().replica_idle_timeout);
  Runtime* runtime = rt;
  Namespace* ns = self_ns;
  std::string hex = self->uid();
  idle_timer->async_wait([runtime, ns, hex](std::error_code ec) {
    if (!ec) runtime->evict_if_idle(*ns, hex);
  });
}

// ---- Socket --------------------------------------------------------------------------------

void Socket::send(const Json& msg) { send_text(Runtime::serialize(msg)); }

void Socket::send_text(std::string_view body, const http::SharedFrames& frames) {
  if (ws_ && frames) ws_->send_shared(frames);
  else send_text(std::string(body));
}

void Socket::send_text(std::string body) {
  if (ws_) {
    ws_->send(body, true);
  } else if (!closing_) {
    // Inside onopen: sent right after the 101. Bounded like any send queue; past the bound the
    // connection is refused rather than buffered.
    constexpr size_t kMaxPending = 1024;
    if (pending_.size() >= kMaxPending) {
      ops::warn("slow_consumer", "over " + std::to_string(kMaxPending) + " sends before the upgrade on " + uid_ + "; closing",
                {{"socket", uid_}, {"code", 1008}});
      close(1008, "too many messages before the upgrade");
      return;
    }
    pending_.push_back(std::move(body));
  }
}

void Socket::close(uint16_t code, std::string_view reason) {
  if (ws_) {
    ws_->close(code, reason);  // a second close is a no-op (DOG PR #20's soft close)
  } else if (!closing_) {
    closing_ = true;
    close_code_ = code;
    close_reason_ = std::string(reason);
  }
}

void Socket::emit(const Json& msg, bool self) {
  if (replica_) replica_->state_->emit_local(uid_, Runtime::serialize(msg), self);
}

Task<void> Socket::broadcast(Json msg, bool self) {
  if (!replica_) co_return;
  replica_->state_->broadcast(uid_, Runtime::serialize(msg), self);
}

Task<void> Socket::whisper(std::string target, Json msg) {
  if (!replica_) co_return;
  replica_->state_->whisper(uid_, target, Runtime::serialize(msg));
}

// ---- the adapter between a front-door WebSocket and Replica hooks --------------------------

class SocketAdapter final : public http::WebSocketHandler {
 public:
  SocketAdapter(std::shared_ptr<Replica> replica, std::shared_ptr<Socket> socket)
      : replica_(std::move(replica)), socket_(std::move(socket)) {}

  ~SocketAdapter() override {
    // The upgrade never completed (the client vanished before the 101): clean up as an error.
    if (!opened_ && !closed_) spawn_closer(replica_, socket_, true, socket_->indexed_);
  }

  void on_open(const std::shared_ptr<http::WebSocket>& ws) override {
    opened_ = true;
    socket_->ws_ = ws;
    for (auto& m : socket_->pending_) ws->send(m, true);
    socket_->pending_.clear();
    if (socket_->closing_) ws->close(socket_->close_code_, socket_->close_reason_);
  }

  // Each message runs onmessage as its own task (DOG does not await it either), so a slow hook
  // does not block the socket. Past kMaxInFlight unfinished hooks the socket stops reading, and
  // TCP pushes back on the client: memory stays bounded however fast it sends.
  static constexpr int kMaxInFlight = 64;

  void on_message(const std::shared_ptr<http::WebSocket>& ws, std::string_view data, bool) override {
    auto rep = replica_;
    if (!*rep->state_->rt_alive) return;  // the node is shutting down
    auto sock = socket_;
    auto flow = flow_;
    if (++flow->in_flight >= kMaxInFlight) ws->pause_reading();
    std::weak_ptr<http::WebSocket> weak_ws = ws;
    asio::co_spawn(
        rep->state_->rt->loop().io(),
        [rep, sock, flow, weak_ws, msg = std::string(data)]() -> Task<void> {
          try {
            co_await rep->onmessage(*sock, msg);
          } catch (const std::exception& e) {
            ops::error("hook_threw", "onmessage threw on " + rep->uid() + ": " + e.what(),
                       {{"hook", "onmessage"}, {"object", rep->uid()}});
            sock->close(1011, "internal error");
          }
          if (--flow->in_flight < kMaxInFlight / 2)
            if (auto w = weak_ws.lock())
              if (!*rep->state_->rt_alive || !rep->state_->rt->fanout().holding(w->id())) w->resume_reading();
        },
        asio::detached);
  }

  // This socket's queue is written out: if a fan-out counted it as behind, it is not any more.
  void on_drain(const std::shared_ptr<http::WebSocket>& ws) override {
    if (*replica_->state_->rt_alive) replica_->state_->rt->fanout().caught_up(ws->id());
  }

  // DOG's rule (Workers' events): a close frame from the client, whatever its code, runs
  // onclose; a connection that ended without one, or that broke the protocol, runs onerror.
  void on_close(const std::shared_ptr<http::WebSocket>& ws, uint16_t code, std::string_view) override {
    if (closed_) return;
    closed_ = true;
    if (*replica_->state_->rt_alive) replica_->state_->rt->fanout().gone(ws->id());
    spawn_closer(replica_, socket_, ws->ended_by_error() || code == 1006, socket_->indexed_);
  }

  // onclose/onerror with the socket still in the pool, then leave the pool and give the slot back.
  static void spawn_closer(std::shared_ptr<Replica> rep, std::shared_ptr<Socket> sock, bool error,
                           bool indexed) {
    auto alive = rep->state_->rt_alive;
    if (!*alive) return;  // the runtime is gone: nothing left to release
    asio::co_spawn(
        rep->state_->rt->loop().io(),
        [rep, sock, error, indexed, alive]() -> Task<void> {
          try {
            if (error) co_await rep->onerror(*sock);
            else co_await rep->onclose(*sock);
          } catch (const std::exception& e) {
            const char* hook = error ? "onerror" : "onclose";
            ops::error("hook_threw", std::string(hook) + " threw on " + rep->uid() + ": " + e.what(),
                       {{"hook", hook}, {"object", rep->uid()}});
          }
          if (!*alive) co_return;
          auto state = rep->state_;
          if (indexed) state->rt->detach_client(state->gid, sock->uid(), sock.get());
          bool empty = state->remove_socket(sock);
          state->release(sock->uid(), empty);
          sock->close();
          sock->closing_ = true;  // later sends are dropped, not queued for an upgrade that is over
          sock->replica_ = nullptr;
          sock->ws_.reset();  // the WebSocket holds our adapter, which holds this socket
          state->touch();
        },
        asio::detached);
  }

 private:
  std::shared_ptr<Replica> replica_;
  std::shared_ptr<Socket> socket_;
  struct Flow {
    int in_flight = 0;
  };
  std::shared_ptr<Flow> flow_ = std::make_shared<Flow>();
  bool opened_ = false;
  bool closed_ = false;
};

// ---- Replica -------------------------------------------------------------------------------

Task<Response> Replica::connect(Request& req) {
  if (req.method != "GET") {
    auto r = Response::method_not_allowed("GET");
    r.headers.set("Connection", "close");
    co_return r;
  }
  // RFC 6455/9110: the Upgrade token is case-insensitive and may sit in a list (DOG compared
  // it case-sensitively). The front door adds `Upgrade: websocket` to every 426.
  if (!req.is_websocket_upgrade()) co_return abort_with(426);
  auto key = req.headers.get("sec-websocket-key");
  std::string k = key ? std::string(*key) : std::string();
  while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
  while (!k.empty() && (k.front() == ' ' || k.front() == '\t')) k.erase(k.begin());
  if (!is_websocket_key(k)) co_return abort_with(400);
  auto version = req.headers.get("sec-websocket-version");
  if (!version || *version != "13") co_return abort_with(400);
  auto oid = req.headers.get("x-dog-replica-identifier");
  if (!oid) co_return abort_with(400, "Missing: Replica ID");
  if (*oid != uid()) co_return abort_with(400, "Mismatch: Replica ID");
  auto rid = req.headers.get("x-dog-client-identifier");
  if (!rid || rid->empty()) co_return abort_with(400, "Missing: Request ID");

  auto self = state_->rt->peer(*state_->self_ns, uid());
  auto socket = std::make_shared<Socket>();
  socket->replica_ = this;
  socket->uid_ = std::string(*rid);
  // onopen runs before the 101 and before the socket joins the pool (DOG §3.8): emit and
  // broadcast from inside onopen do not reach the new socket; its own send() is queued.
  try {
    co_await onopen(*socket);
  } catch (const std::exception& e) {
    // The socket is accepted and closed at once with 1011, as any hook failure on a socket.
    ops::error("hook_threw", "onopen threw on " + uid() + ": " + e.what(), {{"hook", "onopen"}, {"object", uid()}});
    socket->close(1011, "internal error");
  }
  state_->add_socket(socket);
  // A client connected to this node joins the node's index (the group's casts reach it) before
  // the 101; a relayed client is indexed by its entry node instead.
  if (!req.relayed && !state_->gid.empty() && state_->parent_ns) {
    socket->indexed_ = true;
    co_await state_->rt->attach_client(*state_->parent_ns, state_->gid, state_->group_node, socket->uid_, socket, {},
                                      socket.get());
  }
  co_return Response::accept_websocket(std::make_shared<SocketAdapter>(self, socket));
}

Task<Json> Replica::ongossip(const Json&) {
  throw std::runtime_error("Missing: `ongossip` handler");
  co_return Json();
}

Task<std::vector<GossipResult>> Replica::gossip(Json msg, std::chrono::milliseconds deadline) {
  auto state = state_;
  Runtime* rt = state->rt;
  struct Shared {
    std::vector<GossipResult> results;
    size_t pending = 0;
    std::unique_ptr<asio::steady_timer> wake;
  };
  auto shared = std::make_shared<Shared>();
  auto& io = rt->loop().io();
  shared->wake = std::make_unique<asio::steady_timer>(io, deadline);
  // The peers are what the Group knows (no Replica keeps a mesh of its own).
  std::vector<std::pair<std::string, std::string>> peers;
  if (state->parent_ns && !state->gid.empty()) {
    try {
      peers = co_await rt->fetch_peers(*state->parent_ns, state->gid, state->group_node, uid());
    } catch (const std::exception& e) {
      ops::warn("gossip_failed", "gossip could not list the peers of " + uid() + ": " + e.what(), {{"object", uid()}});
    }
  }
  Namespace* child = state->self_ns;
  for (size_t i = 0; i < peers.size(); ++i) {
    // Named copies, not a structured binding: clang 14 (the fuzz build) cannot capture one.
    std::string sid = peers[i].first, node = peers[i].second;
    shared->results.push_back({sid, std::nullopt, ""});
    shared->pending++;
    asio::co_spawn(
        io,
        [rt, child, sid, node, shared, i, msg, deadline]() -> Task<void> {
          try {
            if (node == rt->self_node()) {
              auto p = rt->peer(*child, sid);
              if (!p) throw std::runtime_error("peer is gone");
              shared->results[i].value = co_await p->ongossip(msg);
            } else {
              shared->results[i].value = co_await rt->gossip_remote(node, *child, sid, msg, deadline);
            }
          } catch (const std::exception& e) {
            shared->results[i].error = e.what();
          }
          if (--shared->pending == 0) shared->wake->cancel();
        },
        asio::detached);
  }
  if (shared->pending > 0) {
    std::error_code ec;
    co_await shared->wake->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  auto out = shared->results;  // late answers after the deadline still land in `shared`, unseen
  for (auto& r : out)
    if (!r.value && r.error.empty()) r.error = "timeout";
  co_return out;
}

void Replica::emit(const Json& msg) { state_->emit_local(uid(), Runtime::serialize(msg), true); }

Task<void> Replica::broadcast(Json msg) {
  state_->broadcast(uid(), Runtime::serialize(msg), true);
  co_return;
}

Task<void> Replica::whisper(std::string target, Json msg) {
  state_->whisper(uid(), target, Runtime::serialize(msg));
  co_return;
}

const std::string& Replica::node() const { return state_->rt->self_node(); }

size_t Replica::connections() const {
  size_t n = 0;
  for (const auto& e : state_->pool) n += e.sockets.size();
  return n;
}

// ---- Group defaults ------------------------------------------------------------------------

Task<ObjectId> Group::clusterize(Request&, Namespace& child) { co_return child.new_unique_id(); }

Task<Response> Group::receive(Request&) { co_return abort_with(404, "Not Found"); }

}  // namespace dog
