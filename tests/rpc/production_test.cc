// Built WITHOUT tests/rpc/allow_plaintext.cc, like a node binary: a plaintext channel config
// must be refused everywhere it could enter.
#include <catch2/catch.hpp>

#include "tests/rpc/harness.h"

using namespace dog::rpc;
using namespace dog::rpc::testing;
using dog::node::Loop;

TEST_CASE("rpc production build: encrypt = false is refused", "[rpc][production]") {
  Loop loop;
  CHECK_FALSE(detail::plaintext_allowed());
  dog::membership::Keyring ka(key_from(1)), kb(key_from(1));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  ChannelConfig plain;
  plain.encrypt = false;
  KjPair pair(loop);
  auto e1 = kj::runCatchingExceptions([&] {
    secure_connect(kj::mv(pair.a), ka, "alpha", loop.timer(), plain, sa).wait(loop.wait_scope());
  });
  auto e2 = kj::runCatchingExceptions([&] {
    secure_accept(kj::mv(pair.b), kb, "beta", loop.timer(), plain, sb, window).wait(loop.wait_scope());
  });
  CHECK(e1 != nullptr);
  CHECK(e2 != nullptr);
  CHECK(sa.handshakes_ok == 0);
  CHECK(sb.handshakes_ok == 0);
  ManagerConfig cfg;
  cfg.node_name = "a";
  cfg.channel.encrypt = false;
  dog::membership::Rng rng(1);
  HostState state;
  CHECK_THROWS(ConnectionManager(loop, ka, cfg, make_test_node(state, loop.timer()), rng));
}
