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
#include <unistd.h>

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

namespace {

// Starts a single-buffer write from a frame that returns at once, then overwrites that stack
// region, so a continuation that kept a pointer into write()'s frame reads garbage (and ASan's
// detect_stack_use_after_return reports it).
[[gnu::noinline]] kj::Promise<void> start_write(kj::AsyncIoStream& s, const std::string& data) {
  return s.write(data.data(), data.size());
}
[[gnu::noinline]] void scribble_stack() {
  volatile unsigned char junk[8192];
  for (size_t i = 0; i < sizeof junk; ++i) junk[i] = 0xa5;
}

}  // namespace

TEST_CASE("a single-buffer write that meets a full send buffer continues intact after EAGAIN", "[loop]") {
  Loop loop;
  tcp::acceptor acc(loop.io(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket peer(loop.io());
  peer.connect(acc.local_endpoint());
  tcp::socket accepted = acc.accept();
  // Fill the send buffer through a second descriptor of the same socket while the peer reads
  // nothing, so the stream's very first write_some gets EAGAIN.
  int filler_fd = ::dup(accepted.native_handle());
  REQUIRE(filler_fd >= 0);
  auto stream = dog::node::wrap_socket(std::move(accepted));
  size_t filled = 0;
  {
    std::string block(64 << 10, 'F');
    for (int i = 0; i < 100000; ++i) {
      ssize_t n = ::send(filler_fd, block.data(), block.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0) break;  // EAGAIN: full
      filled += static_cast<size_t>(n);
    }
  }
  ::close(filler_fd);
  REQUIRE(filled > 0);
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + (i >> 12));
  auto pending = start_write(*stream, data);
  scribble_stack();
  loop.poll();
  REQUIRE_FALSE(pending.poll(loop.wait_scope()));  // nothing fits: the write waits on the socket
  peer.non_blocking(true);
  std::string got;
  bool done = false;
  for (int i = 0; i < 1'000'000 && !done; ++i) {
    char buf[65536];
    std::error_code ec;
    size_t n = peer.read_some(asio::buffer(buf), ec);
    if (!ec) got.append(buf, n);
    else if (ec != asio::error::would_block) FAIL("peer read failed: " << ec.message());
    scribble_stack();
    loop.io().restart();
    loop.io().poll();  // delivers the socket's writability to the waiting write
    done = pending.poll(loop.wait_scope());
  }
  INFO("filled " << filled << ", peer received " << got.size() << " bytes");
  REQUIRE(done);
  pending.wait(loop.wait_scope());  // rethrows if the write failed
  peer.non_blocking(false);
  while (got.size() < filled + data.size()) {
    char buf[65536];
    got.append(buf, peer.read_some(asio::buffer(buf)));
  }
  REQUIRE(got.size() == filled + data.size());
  CHECK(got.compare(filled, data.size(), data) == 0);
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
