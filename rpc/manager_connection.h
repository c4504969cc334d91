// Internal to rpc/: what ConnectionManager keeps per connection. Not an API (the nested
// types are private to ConnectionManager); split out to keep connection_manager.cc short.
//
//   UsePolicy     counts the capabilities and calls alive across one connection (a Cap'n
//                 Proto membrane policy), so a duplicate is retired only when unused
//   GatedStream   samples the outgoing queue before every read; past max_queued_bytes it
//                 fails the read and asks the manager to close the connection
//   Connection    the secure stream, the gate, the two-party network, the RpcSystem, the
//                 peer's Node, and the policy
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <string>

#include <capnp/membrane.h>
#include <capnp/rpc-twoparty.h>

#include "rpc/connection_manager.h"

namespace dog::rpc {

// Counts what uses a connection. Every capability that crosses the connection, in either
// direction, and every call, response and call context on it is wrapped by Cap'n Proto's
// membrane code, and each wrapper holds one reference to this policy (addRef). The two roots
// (our Node served to the peer, the peer's Node) are wrapped while `rooting_` is set and not
// counted, so in_use() == 0 means: no call in flight either way, no capability obtained over
// the connection held by anyone. The policy outlives the connection while wrappers exist.
class ConnectionManager::UsePolicy final : public capnp::MembranePolicy {
 public:
  static UsePolicy* create() { return new UsePolicy(); }

  size_t in_use() const { return counted_; }

  kj::Maybe<capnp::Capability::Client> inboundCall(uint64_t, uint16_t,
                                                   capnp::Capability::Client) override {
    return nullptr;
  }
  kj::Maybe<capnp::Capability::Client> outboundCall(uint64_t, uint16_t,
                                                    capnp::Capability::Client) override {
    return nullptr;
  }
  bool shouldResolveBeforeRedirecting() override { return false; }

  kj::Own<capnp::MembranePolicy> addRef() override {
    if (rooting_) {
      ++roots_;
      return kj::Own<capnp::MembranePolicy>(this, kRootDisposer);
    }
    ++counted_;
    return kj::Own<capnp::MembranePolicy>(this, kCountedDisposer);
  }

  // `local` served to the peer, not counted.
  capnp::Capability::Client root_export(capnp::Capability::Client local) {
    rooting_ = true;
    auto wrapped = capnp::membrane(kj::mv(local), addRef());
    rooting_ = false;
    return wrapped;
  }
  // The peer's settled bootstrap capability, seen from our side, not counted.
  capnp::Capability::Client root_import(capnp::Capability::Client remote) {
    rooting_ = true;
    auto wrapped = capnp::reverseMembrane(kj::mv(remote), addRef());
    rooting_ = false;
    return wrapped;
  }

  // The connection lets go; the policy goes when the last wrapper does.
  void release_owner() {
    owned_ = false;
    maybe_delete();
  }

 private:
  struct Disposer final : public kj::Disposer {
    explicit Disposer(bool root) : root(root) {}
    void disposeImpl(void* pointer) const override {
      auto* self = static_cast<UsePolicy*>(pointer);
      if (root) --self->roots_;
      else --self->counted_;
      self->maybe_delete();
    }
    bool root;
  };
  static const Disposer kRootDisposer;
  static const Disposer kCountedDisposer;

  UsePolicy() = default;
  void maybe_delete() {
    if (!owned_ && roots_ == 0 && counted_ == 0) delete this;
  }

  bool owned_ = true;
  bool rooting_ = false;
  size_t roots_ = 0;
  size_t counted_ = 0;
};


// Sits between Cap'n Proto and the secure channel. Before each read (that is, before Cap'n
// Proto takes in more work that may queue replies) it samples the connection's outgoing queue
// and, once more than `limit` bytes wait (the peer has stopped reading), fails the read and
// calls `overflow` so the manager closes the connection: Cap'n Proto alone would keep the
// queue while it waits to flush its Abort message to a peer that does not read.
class ConnectionManager::GatedStream final : public kj::AsyncIoStream {
 public:
  GatedStream(kj::AsyncIoStream& inner, size_t limit, ManagerStats& stats,
              std::function<void()> overflow)
      : inner_(inner), limit_(limit), stats_(stats), overflow_(std::move(overflow)) {}
  void watch(capnp::TwoPartyVatNetwork& network) { network_ = &network; }

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    if (network_ != nullptr) {
      const size_t queued = network_->getCurrentQueueSize();
      stats_.queue_peak_bytes = std::max(stats_.queue_peak_bytes, queued);
      if (queued > limit_) {
        if (!overflowed_) {
          overflowed_ = true;
          ++stats_.queue_overflows;
          overflow_();
        }
        return disconnected("peer stopped reading: send queue over max_queued_bytes");
      }
    }
    return inner_.tryRead(buffer, minBytes, maxBytes);
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return inner_.write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return inner_.write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_.whenWriteDisconnected(); }
  void shutdownWrite() override { inner_.shutdownWrite(); }
  void abortRead() override { inner_.abortRead(); }

 private:
  kj::AsyncIoStream& inner_;
  size_t limit_;
  ManagerStats& stats_;
  std::function<void()> overflow_;
  bool overflowed_ = false;
  capnp::TwoPartyVatNetwork* network_ = nullptr;
};

struct ConnectionManager::Connection {
  // Wraps `session` in Cap'n Proto: the gate, the two-party network with `options`, an
  // RpcSystem serving `local` (through the use-counting membrane) with the flow limit, and
  // the peer's bootstrap Node (wrapped once it has settled; `ready` resolves then).
  Connection(uint64_t id, SecureSession session, capnp::rpc::twoparty::Side side,
             capnp::ReaderOptions options, wire::Node::Client local, size_t flow_limit_words,
             size_t max_queued, ManagerStats& stats, std::function<void()> overflow);
  ~Connection() noexcept(false) {
    ready = nullptr;
    remote = nullptr;
    bootstrap = nullptr;
  }

  uint64_t id;
  kj::Own<kj::AsyncIoStream> stream;
  GatedStream gate;
  std::string peer;
  bool dialled_by_me() const { return dialled; }
  bool dialled;
  bool retiring = false;
  struct PolicyRelease {
    void operator()(UsePolicy* p) const { p->release_owner(); }
  };
  std::unique_ptr<UsePolicy, PolicyRelease> policy;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
  capnp::Capability::Client bootstrap = nullptr;
  wire::Node::Client remote = nullptr;
  bool remote_ready = false;
  kj::ForkedPromise<void> ready = nullptr;
};

}  // namespace dog::rpc
