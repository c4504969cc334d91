// Helpers shared by the channel tests: a fast handshake config, both ends of a handshake over
// loopback, exact reads and writes, and a relay for tampering.
#pragma once

#include <string>

#include <kj/async-io.h>

#include "rpc/secure_channel.h"
#include "tests/rpc/harness.h"

namespace dog::rpc::testing {


inline ChannelConfig fast_config() {
  ChannelConfig c;
  c.handshake_timeout = 2 * kj::SECONDS;
  return c;
}

struct Sessions {
  SecureSession a, b;
};

// Runs both sides of the handshake over one loopback connection.
inline kj::Maybe<kj::Exception> handshake(node::Loop& loop, const membership::Keyring& ka,
                                          const membership::Keyring& kb, ChannelStats& sa,
                                          ChannelStats& sb, HandshakeReplayWindow& window,
                                          Sessions* out = nullptr,
                                          ChannelConfig config = fast_config()) {
  KjPair pair(loop);
  auto pa = secure_connect(kj::mv(pair.a), ka, "alpha", loop.timer(), config, sa);
  auto pb = secure_accept(kj::mv(pair.b), kb, "beta", loop.timer(), config, sb, window);
  return kj::runCatchingExceptions([&] {
    auto both = pa.then([&pb](SecureSession a) {
      return pb.then([a = kj::mv(a)](SecureSession b) mutable {
        Sessions s{kj::mv(a), kj::mv(b)};
        return s;
      });
    });
    auto s = both.wait(loop.wait_scope());
    if (out) *out = kj::mv(s);
  });
}

inline std::string read_n(node::Loop& loop, kj::AsyncIoStream& s, size_t n) {
  std::string buf(n, '\0');
  size_t got = s.tryRead(buf.data(), n, n).wait(loop.wait_scope());
  buf.resize(got);
  return buf;
}

inline void write_all(node::Loop& loop, kj::AsyncIoStream& s, const std::string& data) {
  s.write(data.data(), data.size()).wait(loop.wait_scope());
}

// A relay between a real initiator and a real responder that forwards the handshake untouched
// and then lets the test tamper with the first frame.
struct Relay {
  explicit Relay(node::Loop& loop) : left(loop), right(loop) {}
  KjPair left;   // initiator <-> relay
  KjPair right;  // relay <-> responder
};


}  // namespace dog::rpc::testing
