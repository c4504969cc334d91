// dog-rpc-test-server: one test node in its own process, for the two-process rpc tests.
//
//   dog-rpc-test-server --name NAME --key HEX64 [--plaintext]
// Listens on 127.0.0.1 (port chosen by the kernel), prints the port on stdout, and serves the
// test object host (tests/rpc/test_host.h) until its stdin reaches EOF.
#include <asio/posix/stream_descriptor.hpp>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>

#include "membership/keyring.h"
#include "membership/rng.h"
#include "node/loop.h"
#include "rpc/connection_manager.h"
#include "tests/rpc/test_host.h"

int main(int argc, char** argv) {
  std::string name = "server", key_hex;
  bool plaintext = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--name" && i + 1 < argc) name = argv[++i];
    else if (a == "--key" && i + 1 < argc) key_hex = argv[++i];
    else if (a == "--plaintext") plaintext = true;
  }
  dog::membership::Keyring::Key key{};
  if (key_hex.size() != 64) {
    std::fprintf(stderr, "--key needs 64 hex characters\n");
    return 2;
  }
  for (size_t i = 0; i < 32; ++i) key[i] = uint8_t(std::stoul(key_hex.substr(2 * i, 2), nullptr, 16));

  dog::node::Loop loop;
  dog::membership::Keyring keyring(key);
  dog::membership::Rng rng(42);
  dog::rpc::testing::HostState state;
  state.name = name;
  dog::rpc::ManagerConfig config;
  config.node_name = name;
  config.channel.encrypt = !plaintext;
  {
    dog::rpc::ConnectionManager manager(loop, keyring, config,
                                        dog::rpc::testing::make_test_node(state, loop.timer()), rng);
    uint16_t port = manager.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::printf("%u\n", port);
    std::fflush(stdout);

    asio::posix::stream_descriptor in(loop.io(), ::dup(0));
    char buf[64];
    std::function<void()> watch = [&] {
      in.async_read_some(asio::buffer(buf), [&](std::error_code ec, size_t) {
        if (ec) loop.stop();
        else watch();
      });
    };
    watch();
    loop.run();
  }
  return 0;
}
