// Issue 12 item 17: a length prefix alone must not reserve the inbound byte budget. Before the
// fix eight 4-byte prefixes of 8 MiB held the whole 64 MiB budget and every real push/pull was
// refused.
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "loop_helpers.h"
#include "node/loop.h"
#include "node/swim/swim_io.h"
#include "node/swim/transport.h"

using namespace dog::node::swim;
using namespace std::chrono_literals;
using swim_test::run_until;

namespace {
struct Frames : AsioTransport::Receiver {
  std::vector<std::string> got;
  void on_datagram(std::string_view, std::span<const uint8_t>) override {}
  void on_stream(std::string_view, std::span<const uint8_t> b) override {
    got.emplace_back(b.begin(), b.end());
  }
};
}  // namespace

TEST_CASE("swim_real: length prefixes without bytes do not hold the inbound budget",
          "[swim_real]") {
  dog::node::Loop loop;
  SwimIo io(loop.io());
  TransportLimits lim;  // 8 MiB frames, 64 MiB inbound budget
  AsioTransport t(io, "127.0.0.1:0", lim);
  Frames r;
  t.set_receiver(&r);
  t.start();
  const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), t.port());
  std::vector<asio::ip::tcp::socket> hogs;
  const uint8_t eight_mib[4] = {0x00, 0x80, 0x00, 0x00};
  for (int i = 0; i < 8; ++i) {
    hogs.emplace_back(loop.io());
    hogs.back().connect(ep);
    asio::write(hogs.back(), asio::buffer(eight_mib));
  }
  REQUIRE(run_until(loop, [&] { return t.in_conns() == 8 && t.in_buffered_bytes() > 0; }, 5000ms));
  // Each silent frame holds at most one read chunk, not its declared 8 MiB.
  CHECK(t.in_buffered_bytes() <= 8 * (64u << 10));
  asio::ip::tcp::socket real(loop.io());
  real.connect(ep);
  asio::write(real, asio::buffer(std::string("\0\0\0\2ok", 6)));
  REQUIRE(run_until(loop, [&] { return r.got.size() == 1; }, 5000ms));
  CHECK(r.got[0] == "ok");
  CHECK(t.stats().tcp_rejected == 0);
  // A large frame still arrives whole, in chunks, and releases its budget.
  std::string big(3u << 20, 'z');
  std::string framed("\0\x30\0\0", 4);
  framed += big;
  asio::write(real, asio::buffer(framed));
  REQUIRE(run_until(loop, [&] { return r.got.size() == 2; }, 10000ms));
  CHECK(r.got[1] == big);
  CHECK(t.in_buffered_bytes() <= 8 * (64u << 10));
}
