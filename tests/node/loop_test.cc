// The one event loop: Cap'n Proto RPC, KJ streams, KJ timers and Asio sharing one thread.
#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <capnp/rpc-twoparty.h>
#include <chrono>
#include <thread>

#include "echo.capnp.h"
#include "node/asio_stream.h"
#include "node/kj_await.h"
#include "node/loop.h"

using dog::node::Loop;
using tcp = asio::ip::tcp;

namespace {

class EchoImpl final : public Echo::Server {
 public:
  kj::Promise<void> echo(EchoContext context) override {
    context.getResults().setS(context.getParams().getS());
    return kj::READY_NOW;
  }
  kj::Promise<void> blob(BlobContext context) override {
    auto size = context.getParams().getSize();
    auto data = context.getResults().initData(size);
    for (uint32_t i = 0; i < size; ++i) data[i] = static_cast<kj::byte>(i * 7 + 3);
    return kj::READY_NOW;
  }
};

// A listening socket on 127.0.0.1 whose accepted connections are served by EchoImpl.
struct EchoServer {
  explicit EchoServer(Loop& loop) : acceptor(loop.io(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  void accept() {
    acceptor.async_accept([this](std::error_code ec, tcp::socket s) {
      if (ec) return;
      server.accept(dog::node::wrap_socket(std::move(s)));  // serves until the stream ends
      accept();
    });
  }
  tcp::endpoint endpoint() const { return acceptor.local_endpoint(); }
  capnp::TwoPartyServer server{kj::heap<EchoImpl>()};
  tcp::acceptor acceptor;
};

// Accepted raw socket pair: a KJ stream on one side, a plain Asio socket on the other.
struct StreamPair {
  explicit StreamPair(Loop& loop) : peer(loop.io()) {
    tcp::acceptor acc(loop.io(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    peer.connect(acc.local_endpoint());
    stream = dog::node::wrap_socket(acc.accept());
  }
  tcp::socket peer;
  kj::Own<kj::AsyncIoStream> stream;
};

}  // namespace

TEST_CASE("pipelined Cap'n Proto RPC runs over the Asio bridge", "[loop]") {
  Loop loop;
  EchoServer server(loop);
  auto stream = dog::node::connect_stream(loop.io(), server.endpoint()).wait(loop.wait_scope());
  capnp::TwoPartyClient client(*stream);
  auto echo = client.bootstrap().castAs<Echo>();

  // 50 chains, each 20 calls long, all in flight at once.
  kj::Vector<kj::Promise<int>> chains;
  for (int c = 0; c < 50; ++c) {
    kj::Promise<int> p = 0;
    for (int i = 0; i < 20; ++i) {
      p = p.then([&echo, c, i](int n) mutable {
        auto req = echo.echoRequest();
        auto text = kj::str("c", c, "-", i);
        req.setS(text);
        return req.send().then([n, text = kj::mv(text)](auto resp) {
          REQUIRE(resp.getS() == text);
          return n + 1;
        });
      });
    }
    chains.add(kj::mv(p));
  }
  auto counts = kj::joinPromises(chains.releaseAsArray()).wait(loop.wait_scope());
  int total = 0;
  for (int n : counts) total += n;
  CHECK(total == 1000);
}

TEST_CASE("a multi-megabyte RPC result crosses the bridge intact", "[loop]") {
  Loop loop;
  EchoServer server(loop);
  auto stream = dog::node::connect_stream(loop.io(), server.endpoint()).wait(loop.wait_scope());
  capnp::TwoPartyClient client(*stream);
  auto echo = client.bootstrap().castAs<Echo>();
  auto req = echo.blobRequest();
  const uint32_t size = 6 << 20;
  req.setSize(size);
  auto resp = req.send().wait(loop.wait_scope());
  auto data = resp.getData();
  REQUIRE(data.size() == size);
  bool ok = true;
  for (uint32_t i = 0; i < size; i += 4099) ok = ok && data[i] == static_cast<kj::byte>(i * 7 + 3);
  CHECK(ok);
  CHECK(data[size - 1] == static_cast<kj::byte>((size - 1) * 7 + 3));
}

TEST_CASE("a pending read can be cancelled, and later reads still see the data, then EOF", "[loop]") {
  Loop loop;
  StreamPair pair(loop);
  char first[16];
  {
    auto pending = pair.stream->tryRead(first, 1, sizeof first);
    loop.poll();  // the read is now waiting on the socket
    CHECK_FALSE(pending.poll(loop.wait_scope()));
  }  // dropped: cancelled while pending
  asio::write(pair.peer, asio::buffer(std::string("hello")));
  char buf[16] = {};
  size_t n = pair.stream->tryRead(buf, 5, sizeof buf).wait(loop.wait_scope());
  CHECK(std::string(buf, n) == "hello");

  pair.peer.shutdown(tcp::socket::shutdown_send);
  n = pair.stream->tryRead(buf, 1, sizeof buf).wait(loop.wait_scope());
  CHECK(n == 0);  // EOF is a short read
}

TEST_CASE("writes to a peer that went away fail as DISCONNECTED", "[loop]") {
  Loop loop;
  StreamPair pair(loop);
  pair.peer.close();
  std::string big(1 << 20, 'x');
  kj::Maybe<kj::Exception> error;
  for (int i = 0; i < 8 && error == nullptr; ++i) {
    error = kj::runCatchingExceptions([&] { pair.stream->write(big.data(), big.size()).wait(loop.wait_scope()); });
  }
  KJ_IF_MAYBE(e, error) { CHECK(e->getType() == kj::Exception::Type::DISCONNECTED); }
  else { FAIL("write to a closed peer never failed"); }
}

TEST_CASE("KJ timers fire when KJ drives the loop", "[loop]") {
  Loop loop;
  auto start = std::chrono::steady_clock::now();
  loop.timer().afterDelay(30 * kj::MILLISECONDS).wait(loop.wait_scope());
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed >= std::chrono::milliseconds(30));
  CHECK(elapsed < std::chrono::seconds(5));
}

TEST_CASE("KJ timers created from a plain Asio handler fire when Asio drives", "[loop]") {
  Loop loop;
  bool fired = false;
  kj::Promise<void> held = nullptr;
  asio::steady_timer t(loop.io(), std::chrono::milliseconds(1));
  t.async_wait([&](std::error_code) {
    held = loop.timer().afterDelay(20 * kj::MILLISECONDS).then([&] { fired = true; }).eagerlyEvaluate(nullptr);
  });
  auto start = std::chrono::steady_clock::now();
  loop.run_until_idle();  // returns only when Asio and KJ both have nothing left to do
  CHECK(fired);
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(20));
}

TEST_CASE("another thread can wake the loop through post and through KJ's executor", "[loop]") {
  Loop loop;
  std::atomic<int> posted{0};
  int executed = 0;  // touched only on the loop thread
  const kj::Executor& exec = loop.executor();
  std::thread other([&] {
    loop.post([&] { posted = 1; });
    exec.executeSync([&] { executed = 1; });  // blocks until the loop thread ran it
    loop.stop();
  });
  auto guard_timer = asio::steady_timer(loop.io(), std::chrono::seconds(10));
  guard_timer.async_wait([&](std::error_code ec) { if (!ec) loop.stop(); });
  loop.run();
  other.join();
  guard_timer.cancel();
  CHECK(posted == 1);
  CHECK(executed == 1);
}

TEST_CASE("a coroutine awaits Cap'n Proto calls and Asio timers in straight-line code", "[loop]") {
  Loop loop;
  EchoServer server(loop);
  std::string got;
  bool timer_done = false;
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyClient> client;
  asio::co_spawn(loop.io(), [&]() -> asio::awaitable<void> {
    stream = co_await dog::node::await_kj(loop, dog::node::connect_stream(loop.io(), server.endpoint()));
    client = kj::heap<capnp::TwoPartyClient>(*stream);
    auto echo = client->bootstrap().castAs<Echo>();
    auto req = echo.echoRequest();
    req.setS("over the bridge");
    auto resp = co_await dog::node::await_kj(loop, req.send());
    got = resp.getS().cStr();
    asio::steady_timer t(loop.io(), std::chrono::milliseconds(5));
    co_await t.async_wait(asio::use_awaitable);
    timer_done = true;
    loop.stop();
  }, asio::detached);
  asio::steady_timer guard(loop.io(), std::chrono::seconds(10));
  guard.async_wait([&](std::error_code ec) { if (!ec) loop.stop(); });
  loop.run();
  CHECK(got == "over the bridge");
  CHECK(timer_done);
}

TEST_CASE("a rejected KJ promise rethrows in the coroutine with its kind", "[loop]") {
  Loop loop;
  kj::Exception::Type seen = kj::Exception::Type::FAILED;
  bool caught = false;
  asio::co_spawn(loop.io(), [&]() -> asio::awaitable<void> {
    try {
      co_await dog::node::await_kj(loop, kj::Promise<void>(KJ_EXCEPTION(OVERLOADED, "busy")));
    } catch (const dog::node::KjError& e) {
      caught = true;
      seen = e.type();
    }
  }, asio::detached);
  loop.run_until_idle();
  CHECK(caught);
  CHECK(seen == kj::Exception::Type::OVERLOADED);
}
