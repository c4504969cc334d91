// The secure channel: handshake outcomes, frame-level rejections, batching and flushing.
#include <catch2/catch.hpp>

#include <sodium.h>

#include "rpc/errors.h"
#include "rpc/secure_channel.h"
#include "tests/rpc/channel_helpers.h"
#include "tests/rpc/harness.h"

using namespace dog::rpc;
using namespace dog::rpc::testing;
using dog::membership::Keyring;
using dog::node::Loop;

TEST_CASE("rpc channel: handshake succeeds and bytes flow both ways in order", "[rpc][channel]") {
  Loop loop;
  Keyring ka(key_from(1)), kb(key_from(1));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  Sessions s;
  ChannelConfig config = fast_config();
  SECTION("AES-256-GCM when the CPU has it") {}
  SECTION("ChaCha20-Poly1305 when a side declines AES") { config.offer_aes_gcm = false; }
  auto err = handshake(loop, ka, kb, sa, sb, window, &s, config);
  REQUIRE(err == nullptr);
  CHECK(s.a.peer_name == "beta");
  CHECK(s.b.peer_name == "alpha");
  CHECK(sa.handshakes_ok == 1);
  CHECK(sb.handshakes_ok == 1);
  const bool aes = config.offer_aes_gcm && crypto_aead_aes256gcm_is_available() == 1;
  CHECK(sa.aes_gcm_sessions == (aes ? 1u : 0u));
  CHECK(sb.aes_gcm_sessions == sa.aes_gcm_sessions);

  // A message larger than one frame (256 KiB) and a small one, both directions.
  std::string big(700 * 1024, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char(i * 13 + 1);
  auto w = s.a.stream->write(big.data(), big.size());
  CHECK(read_n(loop, *s.b.stream, big.size()) == big);
  w.wait(loop.wait_scope());
  write_all(loop, *s.b.stream, "pong");
  CHECK(read_n(loop, *s.a.stream, 4) == "pong");

  // Clean EOF at a frame boundary is a short read, not an error.
  s.a.stream->shutdownWrite();
  char c;
  CHECK(s.b.stream->tryRead(&c, 1, 1).wait(loop.wait_scope()) == 0);
  CHECK(sb.bad_frame == 0);
  CHECK(sb.truncated == 0);
}

TEST_CASE("rpc channel: a peer with the wrong cluster key is rejected on both sides", "[rpc][channel]") {
  Loop loop;
  Keyring ka(key_from(1)), kb(key_from(2));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  auto err = handshake(loop, ka, kb, sa, sb, window);
  KJ_IF_MAYBE(e, err) { CHECK(e->getType() == kj::Exception::Type::DISCONNECTED); }
  else { FAIL("handshake with a wrong key succeeded"); }
  CHECK(sb.bad_mac == 1);
  CHECK(sb.handshakes_ok == 0);
  CHECK(sa.handshakes_ok == 0);
}

TEST_CASE("rpc channel: key rotation keeps nodes connecting through every step", "[rpc][channel]") {
  Loop loop;
  auto old_key = key_from(1), new_key = key_from(9);
  Keyring ka(old_key), kb(old_key);
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  // Step 1: install the new key everywhere (still sealing with the old one).
  ka.install(new_key);
  kb.install(new_key);
  CHECK(handshake(loop, ka, kb, sa, sb, window) == nullptr);
  // Step 2: alpha switched to the new key first; beta still seals with the old one.
  ka.use(new_key);
  CHECK(handshake(loop, ka, kb, sa, sb, window) == nullptr);
  CHECK(handshake(loop, kb, ka, sb, sa, window) == nullptr);
  // Step 3: both use the new key and drop the old one.
  kb.use(new_key);
  ka.remove(old_key);
  kb.remove(old_key);
  CHECK(handshake(loop, ka, kb, sa, sb, window) == nullptr);
  // A node that only knows the retired key is now locked out.
  Keyring stale(old_key);
  CHECK(handshake(loop, stale, kb, sa, sb, window) != nullptr);
  CHECK(sb.bad_mac == 1);
}

TEST_CASE("rpc channel: a replayed hello is refused", "[rpc][channel]") {
  Loop loop;
  Keyring ka(key_from(1)), kb(key_from(1));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;

  // Record a genuine Hello1 as an eavesdropper would.
  KjPair tap(loop);
  auto initiator = secure_connect(kj::mv(tap.a), ka, "alpha", loop.timer(), fast_config(), sa);
  std::string hello1 = read_n(loop, *tap.b, detail::kHello1Bytes);
  REQUIRE(hello1.size() == detail::kHello1Bytes);

  // First delivery of the recorded hello: the responder answers (it has not seen the nonce),
  // but the attacker cannot produce Hello3, so no session results.
  KjPair first(loop);
  auto r1 = secure_accept(kj::mv(first.b), kb, "beta", loop.timer(), fast_config(), sb, window);
  write_all(loop, *first.a, hello1);
  CHECK(read_n(loop, *first.a, detail::kHello2Bytes).size() == detail::kHello2Bytes);
  std::string forged(detail::kHello3Bytes, '\x01');
  forged[0] = 1;
  write_all(loop, *first.a, forged);
  auto e1 = kj::runCatchingExceptions([&] { r1.wait(loop.wait_scope()); });
  CHECK(e1 != nullptr);
  CHECK(sb.bad_mac == 1);

  // Second delivery: refused at once as a replay.
  KjPair second(loop);
  auto r2 = secure_accept(kj::mv(second.b), kb, "beta", loop.timer(), fast_config(), sb, window);
  write_all(loop, *second.a, hello1);
  auto e2 = kj::runCatchingExceptions([&] { r2.wait(loop.wait_scope()); });
  CHECK(e2 != nullptr);
  CHECK(sb.replayed == 1);
  CHECK(sb.handshakes_ok == 0);
}

TEST_CASE("rpc channel: truncated, garbage and silent handshakes are refused and counted", "[rpc][channel]") {
  Loop loop;
  Keyring kb(key_from(1));
  ChannelStats sb;
  HandshakeReplayWindow window;

  SECTION("truncated hello") {
    KjPair p(loop);
    auto r = secure_accept(kj::mv(p.b), kb, "beta", loop.timer(), fast_config(), sb, window);
    write_all(loop, *p.a, std::string("DOGRPC\x02", 8) + std::string(20, 'z'));
    p.a->shutdownWrite();
    CHECK(kj::runCatchingExceptions([&] { r.wait(loop.wait_scope()); }) != nullptr);
    CHECK(sb.truncated == 1);
  }
  SECTION("random bytes with the right magic") {
    KjPair p(loop);
    auto r = secure_accept(kj::mv(p.b), kb, "beta", loop.timer(), fast_config(), sb, window);
    std::string junk(detail::kHello1Bytes, '\0');
    randombytes_buf(junk.data(), junk.size());
    std::memcpy(junk.data(), "DOGRPC\x02\x00", 8);
    write_all(loop, *p.a, junk);
    CHECK(kj::runCatchingExceptions([&] { r.wait(loop.wait_scope()); }) != nullptr);
    CHECK(sb.bad_mac == 1);
  }
  SECTION("not a dog-rpc peer at all") {
    KjPair p(loop);
    auto r = secure_accept(kj::mv(p.b), kb, "beta", loop.timer(), fast_config(), sb, window);
    write_all(loop, *p.a, std::string(detail::kHello1Bytes, 'G'));
    CHECK(kj::runCatchingExceptions([&] { r.wait(loop.wait_scope()); }) != nullptr);
    CHECK(sb.bad_frame == 1);
  }
  SECTION("a peer that connects and says nothing hits the handshake deadline") {
    KjPair p(loop);
    ChannelConfig c = fast_config();
    c.handshake_timeout = 30 * kj::MILLISECONDS;
    auto r = secure_accept(kj::mv(p.b), kb, "beta", loop.timer(), c, sb, window);
    auto e = kj::runCatchingExceptions([&] { r.wait(loop.wait_scope()); });
    CHECK(e != nullptr);
    CHECK(sb.timeouts == 1);
  }
}

TEST_CASE("rpc channel: tampered, oversized and cut frames disconnect and are counted", "[rpc][channel]") {
  Loop loop;
  Keyring ka(key_from(1)), kb(key_from(1));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  Relay relay(loop);
  auto pa = secure_connect(kj::mv(relay.left.a), ka, "alpha", loop.timer(), fast_config(), sa);
  auto pb = secure_accept(kj::mv(relay.right.b), kb, "beta", loop.timer(), fast_config(), sb, window);
  // Forward the handshake untouched.
  write_all(loop, *relay.right.a, read_n(loop, *relay.left.b, detail::kHello1Bytes));
  write_all(loop, *relay.left.b, read_n(loop, *relay.right.a, detail::kHello2Bytes));
  write_all(loop, *relay.right.a, read_n(loop, *relay.left.b, detail::kHello3Bytes));
  auto a = pa.wait(loop.wait_scope());
  auto b = pb.wait(loop.wait_scope());

  write_all(loop, *a.stream, "hello");
  std::string frame = read_n(loop, *relay.left.b, 4 + 5 + 16);
  REQUIRE(frame.size() == 25);

  SECTION("one flipped bit") {
    frame[6] ^= 0x10;
    write_all(loop, *relay.right.a, frame);
    char buf[8];
    auto e = kj::runCatchingExceptions([&] { b.stream->tryRead(buf, 5, 5).wait(loop.wait_scope()); });
    KJ_IF_MAYBE(ex, e) { CHECK(ex->getType() == kj::Exception::Type::DISCONNECTED); }
    else { FAIL("tampered frame was accepted"); }
    CHECK(sb.bad_frame == 1);
  }
  SECTION("a length beyond the maximum frame") {
    write_all(loop, *relay.right.a, std::string("\xff\xff\xff\x7f", 4) + frame.substr(4));
    char buf[8];
    CHECK(kj::runCatchingExceptions([&] { b.stream->tryRead(buf, 5, 5).wait(loop.wait_scope()); }) != nullptr);
    CHECK(sb.bad_frame == 1);
  }
  SECTION("the connection ends inside a frame") {
    write_all(loop, *relay.right.a, frame.substr(0, 12));
    relay.right.a->shutdownWrite();
    char buf[8];
    CHECK(kj::runCatchingExceptions([&] { b.stream->tryRead(buf, 5, 5).wait(loop.wait_scope()); }) != nullptr);
    CHECK(sb.truncated == 1);
  }
  SECTION("a replayed frame is refused (its counter is spent)") {
    write_all(loop, *relay.right.a, frame);
    char buf[8];
    CHECK(b.stream->tryRead(buf, 5, 5).wait(loop.wait_scope()) == 5);
    CHECK(std::string(buf, 5) == "hello");
    write_all(loop, *relay.right.a, frame);
    CHECK(kj::runCatchingExceptions([&] { b.stream->tryRead(buf, 5, 5).wait(loop.wait_scope()); }) != nullptr);
    CHECK(sb.bad_frame == 1);
  }
}

TEST_CASE("rpc channel: small writes made together leave in one socket write", "[rpc][channel]") {
  Loop loop;
  Keyring ka(key_from(1)), kb(key_from(1));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  Sessions s;
  REQUIRE(handshake(loop, ka, kb, sa, sb, window, &s) == nullptr);
  // 200 messages of 50 bytes written back to back, as Cap'n Proto does when many calls are in
  // flight: each write returns at once and one flush carries them all.
  std::string expect;
  for (int i = 0; i < 200; ++i) {
    std::string m(50, char('a' + i % 26));
    expect += m;
    s.a.stream->write(m.data(), m.size()).wait(loop.wait_scope());
  }
  CHECK(sa.flushes == 0);  // nothing has left yet: the loop never ran out of work
  CHECK(read_n(loop, *s.b.stream, expect.size()) == expect);
  CHECK(sa.flushes == 1);
  CHECK(sa.frames_sent == 1);
  // Past flush_now_bytes the flush does not wait for the loop to go idle, and large writes
  // are cut into frames of at most max_frame_bytes.
  std::string big(600 * 1024, 'z');
  auto w = s.a.stream->write(big.data(), big.size());
  CHECK(read_n(loop, *s.b.stream, big.size()) == big);
  w.wait(loop.wait_scope());
  CHECK(sa.frames_sent == 1 + 3);
}

TEST_CASE("rpc channel: above write_buffer_bytes pending, write() waits for the socket", "[rpc][channel]") {
  Loop loop;
  Keyring ka(key_from(1)), kb(key_from(1));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  Sessions s;
  REQUIRE(handshake(loop, ka, kb, sa, sb, window, &s) == nullptr);
  // 32 MiB: more than loopback's socket buffers can take while nobody reads.
  std::string big(32 << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = char(i / 4096);
  auto w = s.a.stream->write(big.data(), big.size());
  CHECK_FALSE(w.poll(loop.wait_scope()));  // not done: the reader has not read
  CHECK(sa.flushes >= 1);
  std::string got = read_n(loop, *s.b.stream, big.size());
  w.wait(loop.wait_scope());
  CHECK(got == big);
}

TEST_CASE("rpc channel: a small write leaves within max_flush_delay even when the loop never idles", "[rpc][channel]") {
  Loop loop;
  Keyring ka(key_from(1)), kb(key_from(1));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  Sessions s;
  REQUIRE(handshake(loop, ka, kb, sa, sb, window, &s) == nullptr);
  bool arrived = false;
  char c = 0;
  auto reader = s.b.stream->tryRead(&c, 1, 1).then([&](size_t n) { arrived = n == 1; }).eagerlyEvaluate(nullptr);
  s.a.stream->write("x", 1).wait(loop.wait_scope());  // buffered: returns at once
  CHECK(sa.flushes == 0);
  // Busy work that always has another KJ event queued: the loop never runs out of work, so an
  // idle-time flush alone would never run. Bounded: at most 20 million turns.
  int left = 20'000'000;
  std::function<kj::Promise<void>()> spin = [&]() -> kj::Promise<void> {
    if (arrived || --left == 0) {
      loop.stop();
      return kj::READY_NOW;
    }
    return kj::evalLater([&] { return spin(); });
  };
  auto busy = kj::evalLater([&] { return spin(); }).eagerlyEvaluate(nullptr);
  loop.run();  // Asio drives, as in production; returns at loop.stop()
  CHECK(arrived);
  CHECK(left > 0);
  CHECK(c == 'x');
}
