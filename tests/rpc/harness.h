// Shared fixtures for the rpc tests.
#pragma once

#include <asio/ip/tcp.hpp>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include <kj/async-io.h>

#include "membership/keyring.h"
#include "membership/rng.h"
#include "node/asio_stream.h"
#include "node/loop.h"
#include "rpc/connection_manager.h"
#include "rpc/dog.capnp.h"
#include "tests/rpc/test_host.h"

namespace dog::rpc::testing {

using tcp = asio::ip::tcp;

inline membership::Keyring::Key key_from(uint8_t seed) {
  membership::Keyring::Key k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = uint8_t(seed * 37 + i);
  return k;
}

inline tcp::endpoint loopback(uint16_t port) {
  return tcp::endpoint(asio::ip::make_address("127.0.0.1"), port);
}

// Two KJ streams connected through a real loopback TCP connection.
struct KjPair {
  explicit KjPair(node::Loop& loop) {
    tcp::acceptor acc(loop.io(), loopback(0));
    tcp::socket c(loop.io());
    c.connect(acc.local_endpoint());
    a = node::wrap_socket(std::move(c));
    b = node::wrap_socket(acc.accept());
  }
  kj::Own<kj::AsyncIoStream> a, b;
};

// An AsyncInputStream over a string, handing out at most `step` bytes per read.
class StringInput final : public kj::AsyncInputStream {
 public:
  explicit StringInput(std::string s, size_t step = 1 << 20) : s_(std::move(s)), step_(step) {}
  kj::Promise<size_t> tryRead(void* buf, size_t min, size_t max) override {
    size_t n = std::min({max, s_.size() - pos_, std::max(min, step_)});
    std::memcpy(buf, s_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string s_;
  size_t pos_ = 0;
  size_t step_;
};

// A ByteStream that appends to a string.
class CollectBytes final : public wire::ByteStream::Server {
 public:
  explicit CollectBytes(std::string& out, bool& ended) : out_(out), ended_(ended) {}
  kj::Promise<void> write(WriteContext c) override {
    auto d = c.getParams().getData();
    out_.append(reinterpret_cast<const char*>(d.begin()), d.size());
    return kj::READY_NOW;
  }
  kj::Promise<void> end(EndContext) override {
    ended_ = true;
    return kj::READY_NOW;
  }
  kj::Promise<void> abort(AbortContext) override { return kj::READY_NOW; }

 private:
  std::string& out_;
  bool& ended_;
};

// The entry node's side of a relayed WebSocket: what the Replica's node sends to the client.
// With `hold` set, each send stays pending until release() (a reader that stopped reading).
struct ClientSocket {
  std::vector<std::string> texts;
  uint64_t binary_bytes = 0;
  uint64_t binary_messages = 0;
  uint16_t close_code = 0;
  std::string close_reason;
  bool hold = false;
  std::deque<kj::Own<kj::PromiseFulfiller<void>>> held;

  void release_all() {
    hold = false;
    while (!held.empty()) {
      held.front()->fulfill();
      held.pop_front();
    }
  }
};

class ClientSink final : public wire::WsSink::Server {
 public:
  explicit ClientSink(ClientSocket& s) : s_(s) {}
  kj::Promise<void> send(SendContext c) override {
    auto m = c.getParams().getMessage();
    if (m.isText()) s_.texts.push_back(m.getText());
    else {
      s_.binary_bytes += m.getBinary().size();
      ++s_.binary_messages;
    }
    if (!s_.hold) return kj::READY_NOW;
    auto paf = kj::newPromiseAndFulfiller<void>();
    s_.held.push_back(kj::mv(paf.fulfiller));
    return kj::mv(paf.promise);
  }
  kj::Promise<void> close(CloseContext c) override {
    s_.close_code = c.getParams().getCode();
    s_.close_reason = c.getParams().getReason();
    return kj::READY_NOW;
  }

 private:
  ClientSocket& s_;
};

// Waits on the loop's timer in `step` slices until `done()` or `max_steps` slices passed.
inline bool wait_until(node::Loop& loop, const std::function<bool()>& done, int max_steps = 2000,
                       kj::Duration step = 1 * kj::MILLISECONDS) {
  for (int i = 0; i < max_steps; ++i) {
    if (done()) return true;
    loop.timer().afterDelay(step).wait(loop.wait_scope());
  }
  return done();
}

// One test node: keyring, host state, manager, listening on loopback.
struct TestPeer {
  // `listen` false: no acceptor; connections arrive through manager->accept().
  TestPeer(node::Loop& loop, std::string name, const membership::Keyring::Key& key,
           ManagerConfig config = {}, uint64_t seed = 7, bool listen = true)
      : keyring(key), rng(seed) {
    state.name = name;
    config.node_name = name;
    manager = std::make_unique<ConnectionManager>(loop, keyring, config,
                                                  make_test_node(state, loop.timer()), rng);
    if (listen) port = manager->listen(loopback(0));
  }
  membership::Keyring keyring;
  membership::Rng rng;
  HostState state;
  std::unique_ptr<ConnectionManager> manager;
  uint16_t port = 0;
};

}  // namespace dog::rpc::testing
