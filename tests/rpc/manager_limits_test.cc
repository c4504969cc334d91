// ConnectionManager under hostile load: silent connections against the handshake cap, a peer
// that stops reading (the send-queue bound), and a listener out of file descriptors.
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include "rpc/calls.h"
#include "rpc/secure_channel.h"
#include "tests/rpc/harness.h"
#include "tests/rpc/manager_helpers.h"

using namespace dog::rpc;
using namespace dog::rpc::testing;
using dog::node::Loop;

TEST_CASE("rpc manager: silent connections beyond the handshake cap evict the oldest, not real dials", "[rpc][manager]") {
  Loop loop;
  ManagerConfig cap;
  cap.max_pending_handshakes = 2;
  TestPeer a(loop, "a", key_from(1)), b(loop, "b", key_from(1), cap);
  a.manager->add_peer("b", loopback(b.port));
  // Five silent clients: more than the cap, none of them says a word.
  std::vector<kj::Own<kj::AsyncIoStream>> silent;
  for (int i = 0; i < 5; ++i) {
    silent.push_back(dog::node::connect_stream(loop.io(), loopback(b.port)).wait(loop.wait_scope()));
  }
  REQUIRE(wait_until(loop, [&] { return b.manager->stats().accepted == 5; }));
  CHECK(b.manager->stats().evicted_handshakes == 3);
  // No keypair is made for a connection that has not sent a byte.
  CHECK(b.manager->stats().channel.keypairs == 0);
  // A real dial still gets in at once: it evicts the oldest silent one instead of being refused.
  auto ok = deliver(*a.manager, target_of(1), echo("in"), always("b"), 2 * kj::SECONDS).wait(loop.wait_scope());
  CHECK(ok.body == "echo:in");
  CHECK(b.manager->stats().evicted_handshakes == 4);
  CHECK(a.manager->stats().dial_failures == 0);
  // An evicted client sees its connection closed.
  char c;
  CHECK(silent[0]->tryRead(&c, 1, 1).wait(loop.wait_scope()) == 0);
}


namespace {

// A stream whose reads never complete once `stuck` is set: a peer that stopped reading.
class StuckReader final : public kj::AsyncIoStream {
 public:
  explicit StuckReader(kj::AsyncIoStream& inner) : inner_(inner) {}
  bool stuck = false;
  kj::Promise<size_t> tryRead(void* b, size_t min, size_t max) override {
    if (stuck) return kj::Promise<size_t>(kj::NEVER_DONE);
    return inner_.tryRead(b, min, max);
  }
  kj::Promise<void> write(const void* b, size_t n) override { return inner_.write(b, n); }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> p) override {
    return inner_.write(p);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_.whenWriteDisconnected(); }
  void shutdownWrite() override { inner_.shutdownWrite(); }

 private:
  kj::AsyncIoStream& inner_;
};

}  // namespace

TEST_CASE("rpc manager: a peer that stops reading cannot grow our send queue without bound", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(1);
  ManagerConfig cfg;
  cfg.max_queued_bytes = 2 << 20;
  TestPeer b(loop, "b", key, cfg);
  // An authenticated peer, speaking Cap'n Proto by hand, that never reads what b sends.
  dog::membership::Keyring ks(key);
  ChannelStats ss;
  auto raw = dog::node::connect_stream(loop.io(), loopback(b.port)).wait(loop.wait_scope());
  auto session = secure_connect(kj::mv(raw), ks, "stuck", loop.timer(), ChannelConfig{}, ss)
                     .wait(loop.wait_scope());
  StuckReader stream(*session.stream);
  stream.stuck = true;
  capnp::TwoPartyVatNetwork net(stream, capnp::rpc::twoparty::Side::CLIENT);
  auto rpc = capnp::makeRpcClient(net);
  capnp::MallocMessageBuilder vat_msg(8);
  auto vat = vat_msg.initRoot<capnp::rpc::twoparty::VatId>();
  vat.setSide(capnp::rpc::twoparty::Side::SERVER);
  auto node = rpc.bootstrap(vat).castAs<wire::Node>();

  // Each call is answered with 256 KiB that b cannot send: its queue grows call by call.
  std::string body(256 * 1024, 'q');
  std::vector<kj::Promise<void>> calls;
  bool saw_soft_refusal = false;
  for (int i = 0; i < 80 && b.manager->stats().queue_overflows == 0; ++i) {
    auto req = node.deliverRequest();
    set_target(req.initTarget(), target_of(1));
    req.initHead().setPath("/echo");
    req.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>(body.data()), body.size()));
    calls.push_back(req.send().ignoreResult().eagerlyEvaluate([](kj::Exception&&) {}));
    REQUIRE(wait_until(loop, [&] {
      return b.state.delivered == uint64_t(i + 1) || b.manager->stats().queue_overflows > 0;
    }, 10000));
    const size_t queued = b.manager->queued_bytes("stuck");
    if (!saw_soft_refusal && queued > cfg.max_queued_bytes / 2 && b.manager->connected("stuck")) {
      // Past half the bound, b's own calls to the stuck peer are refused, not queued.
      CHECK(error_of(loop, deliver(*b.manager, target_of(1), echo("x"), always("stuck"), kj::SECONDS)) ==
            ErrorKind::kOverloaded);
      CHECK(b.manager->stats().refused_queue == 1);
      saw_soft_refusal = true;
    }
  }
  CHECK(saw_soft_refusal);
  // Past the bound the connection is dropped; the queue never held much more than the bound.
  REQUIRE(wait_until(loop, [&] { return b.manager->stats().queue_overflows == 1; }, 10000));
  CHECK(b.manager->stats().queue_peak_bytes <= cfg.max_queued_bytes + (512 << 10));
  CHECK(b.state.delivered < 40);  // 80 calls were offered: b stopped taking them in
  REQUIRE(wait_until(loop, [&] { return b.manager->connection_count() == 0; }));
  // b still serves everyone else.
  TestPeer a(loop, "a", key);
  a.manager->add_peer("b", loopback(b.port));
  CHECK(deliver(*a.manager, target_of(1), echo("fine"), always("b"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:fine");
}

TEST_CASE("rpc manager: the listener pauses on EMFILE instead of spinning", "[rpc][manager]") {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizers' own checks (UBSan's vptr check probes memory through a pipe) need file
  // descriptors; with none left they report false errors. Release builds run this test.
  SUCCEED("skipped under sanitizers: they need descriptors of their own");
  return;
#endif
  Loop loop;
  TestPeer b(loop, "b", key_from(1));
  tcp::socket client(loop.io());
  client.open(tcp::v4());  // its descriptor exists before the limit drops
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  const int lowest_free = dup(0);
  REQUIRE(lowest_free >= 0);
  close(lowest_free);
  {
    // Every descriptor below `lowest_free` is taken: accept() cannot get one.
    rlimit tight = saved;
    tight.rlim_cur = rlim_t(lowest_free);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
    auto restore = kj::defer([&] { setrlimit(RLIMIT_NOFILE, &saved); });
    client.async_connect(loopback(b.port), [](std::error_code) {});
    REQUIRE(wait_until(loop, [&] { return b.manager->stats().accept_errors >= 1; }));
    // The pending connection stays in the backlog; a listener that retried at once would
    // fail again on every loop turn. 50 ms of loop time later it has tried at most twice.
    wait_until(loop, [] { return false; }, 50);
    CHECK(b.manager->stats().accept_errors <= 2);
    CHECK(b.manager->stats().accepted == 0);
  }
  // With descriptors available again, the next try takes the connection.
  REQUIRE(wait_until(loop, [&] { return b.manager->stats().accepted == 1; }));
}

TEST_CASE("rpc manager: by default a message over 8 MiB is refused, bigger payloads stream", "[rpc][manager]") {
  Loop loop;
  auto key = key_from(1);
  TestPeer a(loop, "a", key), b(loop, "b", key);
  a.manager->add_peer("b", loopback(b.port));
  CHECK(ManagerConfig{}.traversal_limit_words * 8 == 8u << 20);
  // 7 MiB inline fits (the echo answer too, on a's side)...
  auto ok = deliver(*a.manager, target_of(1), echo(std::string(7 << 20, 'a')), always("b"), 10 * kj::SECONDS)
                .wait(loop.wait_scope());
  CHECK(ok.body.size() == (7u << 20) + 5);
  // ...9 MiB is refused before it leaves (Cap'n Proto will not send a message its own limit
  // would refuse): the call fails, the connection stays.
  CHECK(error_of(loop, deliver(*a.manager, target_of(1), echo(std::string(9 << 20, 'b')), always("b"),
                               10 * kj::SECONDS)) == ErrorKind::kFailed);
  CHECK(deliver(*a.manager, target_of(1), echo("small"), always("b"), kj::SECONDS).wait(loop.wait_scope()).body == "echo:small");
  CHECK(a.manager->stats().dials == 1);
  // A sender configured with the old 64 MiB limit gets it out, and b's reader refuses it: the
  // connection goes, b never sees the call.
  ManagerConfig old_limit;
  old_limit.traversal_limit_words = 8ull << 20;
  TestPeer big(loop, "big", key, old_limit);
  big.manager->add_peer("b", loopback(b.port));
  const auto delivered = b.state.delivered;
  CHECK(error_of(loop, deliver(*big.manager, target_of(1), echo(std::string(9 << 20, 'c')), always("b"),
                               10 * kj::SECONDS)) == ErrorKind::kDisconnected);
  CHECK(b.state.delivered == delivered);
}
