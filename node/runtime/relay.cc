#include "node/runtime/relay.h"

#include <atomic>
#include <cstring>
#include <deque>

#include "node/ops/log.h"

namespace dog {

namespace {
// Messages the entry node holds for a client socket that is not open yet (sent by onopen).
constexpr size_t kMaxPendingMessages = 1024;
constexpr size_t kMaxPendingBytes = 4 << 20;
// Relayed sends from the Replica not yet accepted by Cap'n Proto's stream window. Past this the
// client is not keeping up: closed with 1013, as a slow consumer.
constexpr int kMaxQueuedSends = 4096;
// Client messages in flight towards the Replica before the entry node stops reading the client.
constexpr int kPauseAt = 64;

void set_message(rpc::wire::WsMessage::Builder m, std::string_view data, bool text) {
  if (text) {
    auto t = m.initText(static_cast<unsigned>(data.size()));
    std::memcpy(t.begin(), data.data(), data.size());
  } else {
    auto b = m.initBinary(static_cast<unsigned>(data.size()));
    std::memcpy(b.begin(), data.data(), data.size());
  }
}

std::atomic<uint64_t> next_relay_id{uint64_t{1} << 62};  // apart from the front door's ids
}  // namespace

// ---- entry side ----------------------------------------------------------------------------

struct Runtime::EntryRelay final : http::WebSocketHandler, std::enable_shared_from_this<Runtime::EntryRelay> {
  Runtime* rt = nullptr;
  std::shared_ptr<bool> rt_alive;
  std::shared_ptr<Stub::Identity> route;
  std::optional<rpc::wire::WsSink::Client> from_client;
  std::string node;
  std::weak_ptr<http::WebSocket> ws;
  const http::WebSocket* ws_key = nullptr;
  std::deque<std::pair<std::string, bool>> pending;
  size_t pending_bytes = 0;
  bool overflow = false;
  std::optional<std::pair<uint16_t, std::string>> pending_close;
  bool opened = false, closed = false, gone = false, attached = false;
  int in_flight = 0;
  // noexcept as the base's: a capnp client member's destructor may throw, and clang (the fuzz
  // build) refuses a destructor laxer than the one it overrides.
  ~EntryRelay() noexcept override = default;

  void on_open(const std::shared_ptr<http::WebSocket>& s) override {
    opened = true;
    ws = s;
    ws_key = s.get();
    for (auto& [data, text] : pending) s->send(data, text);
    pending.clear();
    pending_bytes = 0;
    if (overflow) s->close(1008, "too many messages before the upgrade");
    else if (pending_close) s->close(pending_close->first, pending_close->second);
    else if (gone) s->close(1012, "replica gone");
  }

  void on_message(const std::shared_ptr<http::WebSocket>& s, std::string_view data, bool text) override {
    if (closed || !from_client) return;
    auto req = from_client->sendRequest();
    set_message(req.initMessage(), data, text);
    if (++in_flight >= kPauseAt) s->pause_reading();
    std::weak_ptr<EntryRelay> weak = shared_from_this();
    req.send()
        .then(
            [weak]() {
              auto self = weak.lock();
              if (!self) return;
              if (--self->in_flight < kPauseAt / 2)
                if (auto w = self->ws.lock())
                  if (!*self->rt_alive || !self->rt->fanout().holding(w->id())) w->resume_reading();
            },
            [weak](kj::Exception&&) {
              if (auto self = weak.lock()) self->replica_gone();
            })
        .detach([](kj::Exception&&) {});
  }

  // The client's queue is written out: a fan-out that counted it as behind lets go.
  void on_drain(const std::shared_ptr<http::WebSocket>& s) override {
    if (*rt_alive) rt->fanout().caught_up(s->id());
  }

  void on_close(const std::shared_ptr<http::WebSocket>& s, uint16_t code, std::string_view reason) override {
    if (closed) return;
    closed = true;
    if (*rt_alive) rt->fanout().gone(s->id());
    if (attached && route && *rt_alive) rt->detach_client(route->gid, route->rid, this);
    attached = false;
    if (from_client) {
      auto req = from_client->closeRequest();
      req.setCode(code);
      req.setReason(std::string(reason.substr(0, 123)));
      req.setError(s->ended_by_error() || code == 1006);
      req.send().ignoreResult().detach([](kj::Exception&&) {});
      from_client.reset();
    }
  }

  void deliver(std::string_view data, bool text) {
    if (auto s = ws.lock()) {
      s->send(data, text);
      return;
    }
    if (opened || closed) return;
    if (pending.size() >= kMaxPendingMessages || pending_bytes + data.size() > kMaxPendingBytes) {
      overflow = true;
      return;
    }
    pending_bytes += data.size();
    pending.emplace_back(std::string(data), text);
  }

  void deliver_shared(std::string_view data, const http::SharedFrames& frames) {
    if (auto s = ws.lock()) {
      s->send_shared(frames);
      return;
    }
    deliver(data, true);
  }

  void close_from_replica(uint16_t code, std::string reason) {
    if (auto s = ws.lock()) s->close(code, reason);
    else pending_close = {code, std::move(reason)};
  }

  void replica_gone() {
    if (gone) return;
    gone = true;
    if (auto s = ws.lock()) s->close(1012, "replica gone");
  }
};

namespace {

// toClient, served by the entry node: the Replica's sends and closes, onto the client socket.
class ClientSink final : public rpc::wire::WsSink::Server {
 public:
  explicit ClientSink(std::shared_ptr<Runtime::EntryRelay> relay) : relay_(std::move(relay)) {}
  ~ClientSink() noexcept(false) {
    // The Replica's side dropped us without a close: its node or the connection is gone.
    if (!closed_) relay_->replica_gone();
  }

  kj::Promise<void> send(SendContext context) override {
    auto m = context.getParams().getMessage();
    if (m.isText()) {
      auto t = m.getText();
      relay_->deliver(std::string_view(t.begin(), t.size()), true);
    } else {
      auto b = m.getBinary();
      relay_->deliver(std::string_view(reinterpret_cast<const char*>(b.begin()), b.size()), false);
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> close(CloseContext context) override {
    closed_ = true;
    relay_->close_from_replica(context.getParams().getCode(), context.getParams().getReason());
    return kj::READY_NOW;
  }

 private:
  std::shared_ptr<Runtime::EntryRelay> relay_;
  bool closed_ = false;
};

// The Replica's view of a client on another node.
class RelaySocket final : public http::WebSocket {
 public:
  explicit RelaySocket(rpc::wire::WsSink::Client to) : to_(kj::mv(to)), id_(next_relay_id++) {}

  bool send(std::string_view data, bool text) override {
    if (!open_) return false;
    if (queued_ >= kMaxQueuedSends) {
      ops::warn("slow_consumer", "relayed client too slow; closing with 1013", {{"code", 1013}, {"relay", id_}});
      close(1013, "client too slow");
      return false;
    }
    auto req = to_.sendRequest();
    set_message(req.initMessage(), data, text);
    ++queued_;
    queued_bytes_ += data.size();
    auto size = data.size();
    req.send()
        .then([alive = alive_, this, size]() {
          if (!*alive) return;
          --queued_;
          queued_bytes_ -= size;
        }, [alive = alive_, this](kj::Exception&&) {
          if (*alive) open_ = false;
        })
        .detach([](kj::Exception&&) {});
    return true;
  }

  bool send_encoded(std::string_view) override { return false; }  // frames are made at the entry node

  void close(uint16_t code, std::string_view reason) override {
    if (!open_) return;
    open_ = false;
    auto req = to_.closeRequest();
    req.setCode(code);
    req.setReason(std::string(reason.substr(0, 123)));
    req.send().ignoreResult().detach([](kj::Exception&&) {});
  }

  bool is_open() const override { return open_; }
  uint64_t id() const override { return id_; }
  size_t buffered_bytes() const override { return queued_bytes_; }

  void pause_reading() override { paused_ = true; }
  void resume_reading() override {
    paused_ = false;
    auto waiters = std::move(waiters_);
    for (auto& f : waiters) f->fulfill();
  }

  // Resolves when the Replica reads again: answering the client's streaming send only then is
  // what pushes back on the client across the relay.
  kj::Promise<void> when_reading() {
    if (!paused_) return kj::READY_NOW;
    auto paf = kj::newPromiseAndFulfiller<void>();
    waiters_.push_back(kj::mv(paf.fulfiller));
    return kj::mv(paf.promise);
  }

  void mark_closed(bool error) {
    open_ = false;
    error_ = error;
  }
  bool ended_by_error() const override { return error_; }

  ~RelaySocket() noexcept override { *alive_ = false; }

 private:
  rpc::wire::WsSink::Client to_;
  uint64_t id_;
  bool open_ = true;
  bool error_ = false;
  bool paused_ = false;
  int queued_ = 0;
  size_t queued_bytes_ = 0;
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> waiters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// fromClient, served by the Replica's node: the client's messages into the Replica's hooks.
class ReplicaSink final : public rpc::wire::WsSink::Server {
 public:
  ReplicaSink(std::shared_ptr<http::WebSocketHandler> handler, std::shared_ptr<RelaySocket> ws)
      : handler_(std::move(handler)), ws_(std::move(ws)) {}
  ~ReplicaSink() noexcept(false) {
    // The entry node dropped us without a close: it died, or the connection broke.
    if (!closed_) finish(1006, "", true);
  }

  kj::Promise<void> send(SendContext context) override {
    if (closed_) return kj::READY_NOW;
    auto m = context.getParams().getMessage();
    if (m.isText()) {
      auto t = m.getText();
      handler_->on_message(ws_, std::string_view(t.begin(), t.size()), true);
    } else {
      auto b = m.getBinary();
      handler_->on_message(ws_, std::string_view(reinterpret_cast<const char*>(b.begin()), b.size()), false);
    }
    return ws_->when_reading();
  }

  kj::Promise<void> close(CloseContext context) override {
    if (!closed_) finish(context.getParams().getCode(), context.getParams().getReason(), context.getParams().getError());
    return kj::READY_NOW;
  }

 private:
  void finish(uint16_t code, std::string reason, bool error) {
    closed_ = true;
    ws_->mark_closed(error);
    handler_->on_close(ws_, code, reason);
  }

  std::shared_ptr<http::WebSocketHandler> handler_;
  std::shared_ptr<RelaySocket> ws_;
  bool closed_ = false;
};

}  // namespace

bool is_relay_socket(const http::WebSocket& ws) { return dynamic_cast<const RelaySocket*>(&ws) != nullptr; }

std::shared_ptr<Runtime::EntryRelay> make_entry_relay(Runtime& rt, std::shared_ptr<Stub::Identity> route) {
  auto r = std::make_shared<Runtime::EntryRelay>();
  r->rt = &rt;
  r->rt_alive = rt.alive_flag();
  r->route = std::move(route);
  return r;
}

std::shared_ptr<http::WebSocketHandler> as_handler(const std::shared_ptr<Runtime::EntryRelay>& relay) {
  return relay;
}

rpc::wire::WsSink::Client make_client_sink(const std::shared_ptr<Runtime::EntryRelay>& relay) {
  return kj::heap<ClientSink>(relay);
}

void bind_entry_relay(Runtime::EntryRelay& relay, rpc::wire::WsSink::Client from_client, const std::string& node) {
  relay.from_client = kj::mv(from_client);
  relay.node = node;
}

void abandon_entry_relay(Runtime::EntryRelay& relay) { relay.closed = true; }

void relay_deliver(Runtime::EntryRelay& relay, std::string_view text, const http::SharedFrames& frames) {
  relay.deliver_shared(text, frames);
}

std::shared_ptr<http::WebSocket> relay_socket(Runtime::EntryRelay& relay) { return relay.ws.lock(); }

Task<void> attach_entry_relay(Runtime& rt, const std::shared_ptr<Runtime::EntryRelay>& relay) {
  auto route = relay->route;
  if (!route || !route->group_ns || route->gid.empty()) co_return;
  relay->attached = true;
  co_await rt.attach_client(*route->group_ns, route->gid, route->group_node, route->rid, {}, relay, relay.get());
}

void close_entry_relay(Runtime::EntryRelay& relay, uint16_t code, const std::string& reason) {
  relay.gone = true;
  if (auto s = relay.ws.lock()) s->close(code, reason);
}

rpc::wire::WsSink::Client open_replica_relay(Runtime&, std::shared_ptr<http::WebSocketHandler> handler,
                                             rpc::wire::WsSink::Client to_client) {
  auto ws = std::make_shared<RelaySocket>(kj::mv(to_client));
  auto sink = kj::heap<ReplicaSink>(handler, ws);
  handler->on_open(ws);
  return kj::mv(sink);
}

}  // namespace dog
