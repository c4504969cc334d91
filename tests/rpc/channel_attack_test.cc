// The secure channel against an attacker in the middle, and its key life cycle: tampered or
// forged handshakes, reflection, the session-key derivation, key removal, rekeying, cuts.
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

namespace {

// A relay that lets the test rewrite the handshake in flight.
struct Mitm {
  Mitm(Loop& loop, const Keyring& ki, const Keyring& kr, ChannelStats& si, ChannelStats& sr,
       HandshakeReplayWindow& window, ChannelConfig ci = fast_config(),
       ChannelConfig cr = fast_config())
      : relay(loop),
        initiator(secure_connect(kj::mv(relay.left.a), ki, "alpha", loop.timer(), ci, si)),
        responder(secure_accept(kj::mv(relay.right.b), kr, "beta", loop.timer(), cr, sr, window)) {}
  Relay relay;
  kj::Promise<SecureSession> initiator;
  kj::Promise<SecureSession> responder;
};

bool fails(Loop& loop, kj::Promise<SecureSession>& p) {
  return kj::runCatchingExceptions([&] { p.wait(loop.wait_scope()); }) != nullptr;
}

}  // namespace

TEST_CASE("rpc channel: a man in the middle cannot alter the handshake", "[rpc][channel]") {
  Loop loop;
  Keyring ka(key_from(1)), kb(key_from(1));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  Mitm m(loop, ka, kb, sa, sb, window);
  auto& r = m.relay;
  std::string h1 = read_n(loop, *r.left.b, detail::kHello1Bytes);

  SECTION("a bad tag2 is refused by the initiator") {
    write_all(loop, *r.right.a, h1);
    std::string h2 = read_n(loop, *r.right.a, detail::kHello2Bytes);
    h2[h2.size() - 1] ^= 1;
    write_all(loop, *r.left.b, h2);
    CHECK(fails(loop, m.initiator));
    CHECK(sa.bad_mac == 1);
    CHECK(sa.handshakes_ok == 0);
  }
  SECTION("the responder's key swapped for the attacker's is refused by the initiator") {
    write_all(loop, *r.right.a, h1);
    std::string h2 = read_n(loop, *r.right.a, detail::kHello2Bytes);
    unsigned char pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES];
    crypto_kx_keypair(pk, sk);
    std::memcpy(h2.data(), pk, sizeof pk);
    write_all(loop, *r.left.b, h2);
    CHECK(fails(loop, m.initiator));
    CHECK(sa.bad_mac == 1);
  }
  SECTION("the initiator's key swapped for the attacker's is refused by the responder") {
    unsigned char pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES];
    crypto_kx_keypair(pk, sk);
    std::memcpy(h1.data() + 8, pk, sizeof pk);
    write_all(loop, *r.right.a, h1);
    CHECK(fails(loop, m.responder));
    CHECK(sb.bad_mac == 1);
    CHECK(sb.keypairs == 0);  // refused before the responder made a keypair
  }
}

TEST_CASE("rpc channel: a cipher the initiator did not offer is refused", "[rpc][channel]") {
  if (crypto_aead_aes256gcm_is_available() != 1) return;  // AES-GCM cannot be forged here
  Loop loop;
  Keyring ka(key_from(1)), forger(key_from(1));  // the forger holds the cluster key
  ChannelStats sa;
  ChannelConfig no_aes = fast_config();
  no_aes.offer_aes_gcm = false;
  KjPair p(loop);
  auto initiator = secure_connect(kj::mv(p.a), ka, "alpha", loop.timer(), no_aes, sa);
  std::string h1 = read_n(loop, *p.b, detail::kHello1Bytes);
  REQUIRE(h1[7] == 0);  // no AES offer
  // A well-formed Hello2 that picks AES-256-GCM, with a valid tag2.
  std::string h2(32 + 32, '\0');
  unsigned char pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES];
  crypto_kx_keypair(pk, sk);
  std::memcpy(h2.data(), pk, 32);
  randombytes_buf(h2.data() + 32, 32);
  h2.push_back('\x01');  // Cipher::kAes256Gcm
  h2.push_back(char(4));
  h2 += "beta";
  h2.resize(h2.size() + 60, '\0');
  std::string ad = "dog-rpc/hello2" + h1 + h2;
  std::string tag(Keyring::kOverhead, '\0');
  Keyring::Nonce nonce{};
  randombytes_buf(nonce.data(), nonce.size());
  forger.seal({}, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ad.data()), ad.size()),
              nonce, std::span<uint8_t>(reinterpret_cast<uint8_t*>(tag.data()), tag.size()));
  write_all(loop, *p.b, h2 + tag);
  CHECK(kj::runCatchingExceptions([&] { initiator.wait(loop.wait_scope()); }) != nullptr);
  CHECK(sa.bad_cipher == 1);
  CHECK(sa.bad_mac == 0);  // the tag was genuine: the cipher check is what refused it
}

TEST_CASE("rpc channel: a Hello1 reflected back to its sender is refused", "[rpc][channel]") {
  Loop loop;
  Keyring k(key_from(1));
  ChannelStats si, sr;
  HandshakeReplayWindow window;
  // alpha dials out; an attacker sends alpha's own Hello1 to alpha's listener.
  KjPair out(loop);
  auto dial = secure_connect(kj::mv(out.a), k, "alpha", loop.timer(), fast_config(), si);
  std::string h1 = read_n(loop, *out.b, detail::kHello1Bytes);
  KjPair in(loop);
  auto listener = secure_accept(kj::mv(in.b), k, "alpha", loop.timer(), fast_config(), sr, window);
  write_all(loop, *in.a, h1);
  CHECK(kj::runCatchingExceptions([&] { listener.wait(loop.wait_scope()); }) != nullptr);
  CHECK(sr.reflected == 1);
  CHECK(sr.keypairs == 0);
}

TEST_CASE("rpc channel: session keys mix the cluster key and the transcript into X25519's", "[rpc][channel]") {
  // The test plays the responder by hand (it holds the cluster key and its own X25519 secret)
  // against a real initiator, then decrypts the initiator's first frame two ways.
  Loop loop;
  auto cluster_key = key_from(1);
  Keyring ka(cluster_key), kr(cluster_key);
  ChannelStats sa;
  ChannelConfig no_aes = fast_config();
  no_aes.offer_aes_gcm = false;  // ChaCha20-Poly1305, simplest to decrypt here
  KjPair p(loop);
  auto initiator = secure_connect(kj::mv(p.a), ka, "alpha", loop.timer(), no_aes, sa);
  std::string h1 = read_n(loop, *p.b, detail::kHello1Bytes);
  unsigned char pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES];
  crypto_kx_keypair(pk, sk);
  std::string h2(reinterpret_cast<char*>(pk), 32);
  h2.resize(64);
  randombytes_buf(h2.data() + 32, 32);
  h2.push_back('\0');  // ChaCha20-Poly1305
  h2.push_back(char(4));
  h2 += "beta";
  h2.resize(h2.size() + 60, '\0');
  auto seal = [&](const std::string& ad) {
    std::string tag(Keyring::kOverhead, '\0');
    Keyring::Nonce nonce{};
    randombytes_buf(nonce.data(), nonce.size());
    kr.seal({}, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ad.data()), ad.size()),
            nonce, std::span<uint8_t>(reinterpret_cast<uint8_t*>(tag.data()), tag.size()));
    return tag;
  };
  h2 += seal("dog-rpc/hello2" + h1 + h2);
  write_all(loop, *p.b, h2);
  REQUIRE(read_n(loop, *p.b, detail::kHello3Bytes).size() == detail::kHello3Bytes);
  auto a = initiator.wait(loop.wait_scope());
  write_all(loop, *a.stream, "hello");
  std::string frame = read_n(loop, *p.b, 4 + 5 + 16);
  REQUIRE(frame.size() == 25);

  unsigned char kx_rx[32], kx_tx[32];
  REQUIRE(crypto_kx_server_session_keys(kx_rx, kx_tx, pk, sk,
                                        reinterpret_cast<const unsigned char*>(h1.data() + 8)) == 0);
  auto opens_with = [&](const unsigned char* key) {
    unsigned char nonce[12] = {};
    unsigned char out[5];
    unsigned long long n = 0;
    return crypto_aead_chacha20poly1305_ietf_decrypt(
               out, &n, nullptr, reinterpret_cast<const unsigned char*>(frame.data() + 4), 21,
               reinterpret_cast<const unsigned char*>(frame.data()), 4, nonce, key) == 0 &&
           std::string(reinterpret_cast<char*>(out), 5) == "hello";
  };
  // crypto_kx alone (the old derivation) does not open it...
  CHECK_FALSE(opens_with(kx_rx));
  // ...BLAKE2b(key = cluster key, label | transcript hash | crypto_kx key) does.
  unsigned char th[32], i2r[32];
  std::string t = "dog-rpc/v2/transcript" + h1 + h2;
  crypto_generichash(th, 32, reinterpret_cast<const unsigned char*>(t.data()), t.size(), nullptr, 0);
  std::string m = "dog-rpc/v2/initiator->responder" + std::string(reinterpret_cast<char*>(th), 32) +
                  std::string(reinterpret_cast<char*>(kx_rx), 32);
  crypto_generichash(i2r, 32, reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                     cluster_key.data(), 32);
  CHECK(opens_with(i2r));
  // The same with another cluster key, or with a different transcript, does not.
  auto other = key_from(2);
  unsigned char wrong[32];
  crypto_generichash(wrong, 32, reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                     other.data(), 32);
  CHECK_FALSE(opens_with(wrong));
}

TEST_CASE("rpc channel: a session ends when the cluster key it was made under is removed", "[rpc][channel]") {
  Loop loop;
  auto old_key = key_from(1), new_key = key_from(9);
  Keyring ka(old_key), kb(old_key);
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  Sessions s;
  REQUIRE(handshake(loop, ka, kb, sa, sb, window, &s) == nullptr);
  write_all(loop, *s.a.stream, "before");
  CHECK(read_n(loop, *s.b.stream, 6) == "before");
  // Rotation: everyone installs and uses the new key, then removes the old one.
  ka.install(new_key);
  kb.install(new_key);
  ka.use(new_key);
  kb.use(new_key);
  // Sessions made under the old key keep working until the old key is removed...
  write_all(loop, *s.a.stream, "during");
  CHECK(read_n(loop, *s.b.stream, 6) == "during");
  kb.remove(old_key);
  // ...then the receiver refuses the next frame, and the sender refuses to send.
  write_all(loop, *s.a.stream, "after");
  char buf[8];
  CHECK(kj::runCatchingExceptions([&] { s.b.stream->tryRead(buf, 5, 5).wait(loop.wait_scope()); }) != nullptr);
  CHECK(sb.key_removed == 1);
  ka.remove(old_key);
  auto e = kj::runCatchingExceptions([&] {
    s.a.stream->write("x", 1).wait(loop.wait_scope());
    // The write was buffered; its flush is what fails, and the next write reports it.
    loop.timer().afterDelay(5 * kj::MILLISECONDS).wait(loop.wait_scope());
    s.a.stream->write("y", 1).wait(loop.wait_scope());
  });
  CHECK(e != nullptr);
  CHECK(sa.key_removed == 1);
  // A new session under the new key works.
  Sessions fresh;
  CHECK(handshake(loop, ka, kb, sa, sb, window, &fresh) == nullptr);
}

TEST_CASE("rpc channel: keys are ratcheted every rekey_frames frames in both directions", "[rpc][channel]") {
  Loop loop;
  Keyring ka(key_from(1)), kb(key_from(1));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  Sessions s;
  ChannelConfig c = fast_config();
  c.rekey_frames = 3;
  SECTION("AES-256-GCM when the CPU has it") {}
  SECTION("ChaCha20-Poly1305") { c.offer_aes_gcm = false; }
  REQUIRE(handshake(loop, ka, kb, sa, sb, window, &s, c) == nullptr);
  // Each round trip is one frame per direction; 20 frames cross 6 key changes each way.
  for (int i = 0; i < 20; ++i) {
    std::string m = "ping " + std::to_string(i);
    write_all(loop, *s.a.stream, m);
    CHECK(read_n(loop, *s.b.stream, m.size()) == m);
    write_all(loop, *s.b.stream, "pong");
    CHECK(read_n(loop, *s.a.stream, 4) == "pong");
  }
  CHECK(sa.rekeys == 6);
  CHECK(sb.rekeys == 6);
  CHECK(sa.bad_frame == 0);
  CHECK(sb.bad_frame == 0);
}

TEST_CASE("rpc channel: a stream cut at a frame boundary is an error, not a clean end", "[rpc][channel]") {
  Loop loop;
  Keyring ka(key_from(1)), kb(key_from(1));
  ChannelStats sa, sb;
  HandshakeReplayWindow window;
  Relay relay(loop);
  auto pa = secure_connect(kj::mv(relay.left.a), ka, "alpha", loop.timer(), fast_config(), sa);
  auto pb = secure_accept(kj::mv(relay.right.b), kb, "beta", loop.timer(), fast_config(), sb, window);
  write_all(loop, *relay.right.a, read_n(loop, *relay.left.b, detail::kHello1Bytes));
  write_all(loop, *relay.left.b, read_n(loop, *relay.right.a, detail::kHello2Bytes));
  write_all(loop, *relay.right.a, read_n(loop, *relay.left.b, detail::kHello3Bytes));
  auto a = pa.wait(loop.wait_scope());
  auto b = pb.wait(loop.wait_scope());
  write_all(loop, *a.stream, "hello");
  // The attacker forwards the whole frame, then ends the TCP stream.
  write_all(loop, *relay.right.a, read_n(loop, *relay.left.b, 4 + 5 + 16));
  relay.right.a->shutdownWrite();
  char buf[8];
  CHECK(b.stream->tryRead(buf, 5, 5).wait(loop.wait_scope()) == 5);
  CHECK(kj::runCatchingExceptions([&] { b.stream->tryRead(buf, 1, 1).wait(loop.wait_scope()); }) != nullptr);
  CHECK(sb.truncated == 1);
}
