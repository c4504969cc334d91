#include "rpc/secure_channel.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include <kj/debug.h>

#include "rpc/framed_stream.h"

namespace dog::rpc {
namespace {

using membership::Keyring;
using Bytes = std::vector<uint8_t>;
using detail::aes_available;
using detail::Cipher;
using detail::kdf;
using detail::SessionKeys;

// Byte 6 is the protocol version (2: session keys bound to the cluster key and the transcript,
// close frames); byte 7 carries the cipher offer.
constexpr uint8_t kMagic[8] = {'D', 'O', 'G', 'R', 'P', 'C', 2, 0};
constexpr char kLabel1[] = "dog-rpc/hello1";
constexpr char kLabel2[] = "dog-rpc/hello2";
constexpr char kLabel3[] = "dog-rpc/hello3";
constexpr char kLabelTranscript[] = "dog-rpc/v2/transcript";
constexpr char kLabelI2R[] = "dog-rpc/v2/initiator->responder";
constexpr char kLabelR2I[] = "dog-rpc/v2/responder->initiator";

kj::Exception reject(const char* why) {
  return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                       kj::str("dog-rpc handshake rejected: ", why));
}

kj::Exception plaintext_refused() {
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                       kj::str("dog-rpc: a plaintext channel is test-only (encrypt = false)"));
}

// Handshake

struct Handshake {
  Handshake(kj::Own<kj::AsyncIoStream> s, const Keyring& k, std::string name, ChannelConfig c,
            ChannelStats& st)
      : inner(kj::mv(s)), keyring(k), my_name(kj::mv(name)), config(c), stats(st) {}
  // The initiator makes its keypair before Hello1; the responder only once a Hello1 has
  // passed its checks, so a connection that sends nothing costs no key generation.
  void make_keypair() {
    crypto_kx_keypair(pk, sk);
    ++stats.keypairs;
  }
  ~Handshake() {
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(psk.data(), psk.size());
  }

  kj::Own<kj::AsyncIoStream> inner;
  const Keyring& keyring;
  std::string my_name;
  ChannelConfig config;
  ChannelStats& stats;
  kj::Timer* timer = nullptr;
  uint8_t pk[crypto_kx_PUBLICKEYBYTES] = {};
  uint8_t sk[crypto_kx_SECRETKEYBYTES] = {};
  Bytes h1, h2, h3;
  std::string peer_name;
  Cipher cipher = Cipher::kChaCha20Poly1305;
  Keyring::Key psk{};  // initiator: its sealing key for tag1; responder: the key that opened it
};

// Appends `name` as [len][64 bytes, zero padded].
void put_name(Bytes& out, const std::string& name) {
  const size_t n = std::min(name.size(), detail::kNameBytes);
  out.push_back(uint8_t(n));
  const size_t at = out.size();
  out.resize(at + detail::kNameBytes, 0);
  std::memcpy(out.data() + at, name.data(), n);
}

std::optional<std::string> get_name(const uint8_t* p) {
  if (p[0] > detail::kNameBytes) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(p + 1), p[0]);
}

Bytes ad_for(const char* label, std::initializer_list<std::pair<const uint8_t*, size_t>> parts) {
  Bytes ad(label, label + std::strlen(label));
  for (auto& [p, n] : parts) ad.insert(ad.end(), p, p + n);
  return ad;
}

// Appends the MAC tag over `ad`. Plaintext mode appends zeros (no key is checked).
void put_tag(Handshake& hs, Bytes& msg, const Bytes& ad) {
  const size_t at = msg.size();
  msg.resize(at + Keyring::kOverhead, 0);
  if (!hs.config.encrypt) return;
  Keyring::Nonce nonce;
  randombytes_buf(nonce.data(), nonce.size());
  hs.keyring.seal({}, ad, nonce, std::span<uint8_t>(msg.data() + at, Keyring::kOverhead));
}

bool check_tag(Handshake& hs, const uint8_t* tag, const Bytes& ad,
               Keyring::Key* opened_with = nullptr) {
  if (!hs.config.encrypt) return true;
  uint8_t dummy[1];
  return hs.keyring
      .open(std::span<const uint8_t>(tag, Keyring::kOverhead), ad, std::span<uint8_t>(dummy, 0),
            nullptr, opened_with)
      .has_value();
}

kj::Promise<void> read_exact(Handshake& hs, Bytes& buf, size_t n) {
  buf.resize(n);
  return hs.inner->tryRead(buf.data(), n, n).then([&hs, n](size_t got) {
    if (got < n) {
      ++hs.stats.truncated;
      kj::throwFatalException(reject("connection ended inside the handshake"));
    }
  });
}

// Session keys, as Noise's psk patterns do: the X25519 result alone is not enough, each
// direction's key is BLAKE2b keyed by the cluster key (psk) over a role label, the hash of
// the whole transcript (Hello1 | Hello2) and crypto_kx's key for that direction. So a party
// without the cluster key learns nothing even if it broke the MACs' check, the keys are bound
// to everything both sides said, and the two directions (roles) never share a key.
kj::Promise<SecureSession> finish(kj::Own<Handshake> hs, bool initiator) {
  SessionKeys keys;
  keys.cipher = hs->cipher;
  keys.psk = hs->psk;
  if (hs->config.encrypt) {
    const uint8_t* peer_pk = initiator ? hs->h2.data() : hs->h1.data() + 8;
    std::array<uint8_t, 32> kx_rx{}, kx_tx{};
    int rc = initiator ? crypto_kx_client_session_keys(kx_rx.data(), kx_tx.data(), hs->pk,
                                                       hs->sk, peer_pk)
                       : crypto_kx_server_session_keys(kx_rx.data(), kx_tx.data(), hs->pk,
                                                       hs->sk, peer_pk);
    if (rc != 0) return reject("bad peer public key");
    uint8_t th[32];
    kdf(th, nullptr,
        {{kLabelTranscript, sizeof kLabelTranscript - 1},
         {hs->h1.data(), hs->h1.size()},
         {hs->h2.data(), hs->h2.size()}});
    // Initiator: tx is I->R; responder: rx is I->R.
    auto& i2r_kx = initiator ? kx_tx : kx_rx;
    auto& r2i_kx = initiator ? kx_rx : kx_tx;
    auto& i2r = initiator ? keys.tx : keys.rx;
    auto& r2i = initiator ? keys.rx : keys.tx;
    kdf(i2r.data(), hs->psk.data(),
        {{kLabelI2R, sizeof kLabelI2R - 1}, {th, sizeof th}, {i2r_kx.data(), 32}});
    kdf(r2i.data(), hs->psk.data(),
        {{kLabelR2I, sizeof kLabelR2I - 1}, {th, sizeof th}, {r2i_kx.data(), 32}});
    sodium_memzero(kx_rx.data(), 32);
    sodium_memzero(kx_tx.data(), 32);
  }
  ++hs->stats.handshakes_ok;
  if (hs->config.encrypt && hs->cipher == Cipher::kAes256Gcm) ++hs->stats.aes_gcm_sessions;
  SecureSession s;
  s.peer_name = hs->peer_name;
  s.stream = detail::make_framed_stream(kj::mv(hs->inner), keys, hs->config, hs->stats,
                                        hs->keyring, *hs->timer);
  return kj::mv(s);
}

template <typename T>
kj::Promise<T> with_deadline(kj::Timer& timer, kj::Duration d, ChannelStats& stats,
                             kj::Promise<T> p) {
  return p.exclusiveJoin(timer.afterDelay(d).then([&stats]() -> kj::Promise<T> {
    ++stats.timeouts;
    return reject("handshake deadline passed");
  }));
}

}  // namespace

bool HandshakeReplayWindow::accept(const std::string& nonce) {
  if (!seen_.insert(nonce).second) return false;
  order_.push_back(nonce);
  if (order_.size() > capacity_) {
    seen_.erase(order_.front());
    order_.pop_front();
  }
  return true;
}

kj::Promise<SecureSession> secure_connect(kj::Own<kj::AsyncIoStream> inner,
                                          const membership::Keyring& keyring,
                                          std::string my_name, kj::Timer& timer,
                                          ChannelConfig config, ChannelStats& stats) {
  if (!config.encrypt && !detail::plaintext_allowed()) return plaintext_refused();
  auto hs = kj::heap<Handshake>(kj::mv(inner), keyring, kj::mv(my_name), config, stats);
  auto& h = *hs;
  h.timer = &timer;
  h.make_keypair();
  if (h.config.encrypt) h.psk = keyring.primary();  // what seals tag1
  h.h1.assign(kMagic, kMagic + 8);
  h.h1[7] = h.config.offer_aes_gcm && aes_available() ? 1 : 0;  // cipher offer
  h.h1.insert(h.h1.end(), h.pk, h.pk + sizeof h.pk);
  h.h1.resize(h.h1.size() + 32);
  randombytes_buf(h.h1.data() + 40, 32);
  put_name(h.h1, h.my_name);
  put_tag(h, h.h1, ad_for(kLabel1, {{h.h1.data(), h.h1.size()}}));
  KJ_ASSERT(h.h1.size() == detail::kHello1Bytes);

  auto run = h.inner->write(h.h1.data(), h.h1.size())
                 .then([&h] { return read_exact(h, h.h2, detail::kHello2Bytes); })
                 .then([&h] {
                   const size_t body = detail::kHello2Bytes - Keyring::kOverhead;
                   if (!check_tag(h, h.h2.data() + body,
                                  ad_for(kLabel2, {{h.h1.data(), h.h1.size()}, {h.h2.data(), body}}))) {
                     ++h.stats.bad_mac;
                     kj::throwFatalException(reject("responder does not hold a cluster key"));
                   }
                   auto name = get_name(h.h2.data() + 65);
                   if (!name) kj::throwFatalException(reject("bad name"));
                   if (*name == h.my_name) {
                     ++h.stats.reflected;
                     kj::throwFatalException(reject("our own hello came back (reflection)"));
                   }
                   h.peer_name = *name;
                   h.cipher = Cipher(h.h2[64]);
                   if (h.cipher != Cipher::kChaCha20Poly1305 &&
                       !(h.cipher == Cipher::kAes256Gcm && h.h1[7] == 1)) {
                     ++h.stats.bad_cipher;
                     kj::throwFatalException(reject("responder chose a cipher we did not offer"));
                   }
                   put_tag(h, h.h3,
                           ad_for(kLabel3, {{h.h1.data(), h.h1.size()}, {h.h2.data(), h.h2.size()}}));
                   return h.inner->write(h.h3.data(), h.h3.size());
                 })
                 .then([hs = kj::mv(hs)]() mutable { return finish(kj::mv(hs), true); });
  return with_deadline(timer, config.handshake_timeout, stats, kj::mv(run));
}

kj::Promise<SecureSession> secure_accept(kj::Own<kj::AsyncIoStream> inner,
                                         const membership::Keyring& keyring,
                                         std::string my_name, kj::Timer& timer,
                                         ChannelConfig config, ChannelStats& stats,
                                         HandshakeReplayWindow& window) {
  if (!config.encrypt && !detail::plaintext_allowed()) return plaintext_refused();
  auto hs = kj::heap<Handshake>(kj::mv(inner), keyring, kj::mv(my_name), config, stats);
  auto& h = *hs;
  h.timer = &timer;
  auto run = read_exact(h, h.h1, detail::kHello1Bytes)
                 .then([&h, &window] {
                   if (std::memcmp(h.h1.data(), kMagic, 7) != 0) {
                     ++h.stats.bad_frame;
                     kj::throwFatalException(reject("not a dog-rpc hello"));
                   }
                   const size_t body = detail::kHello1Bytes - Keyring::kOverhead;
                   if (!check_tag(h, h.h1.data() + body, ad_for(kLabel1, {{h.h1.data(), body}}),
                                  &h.psk)) {
                     ++h.stats.bad_mac;
                     kj::throwFatalException(reject("initiator does not hold a cluster key"));
                   }
                   if (h.config.encrypt &&
                       !window.accept(std::string(reinterpret_cast<char*>(h.h1.data() + 40), 32))) {
                     ++h.stats.replayed;
                     kj::throwFatalException(reject("replayed hello"));
                   }
                   auto name = get_name(h.h1.data() + 72);
                   if (!name) kj::throwFatalException(reject("bad name"));
                   if (*name == h.my_name) {
                     // Our own Hello1, sent back to us: roles are bound to names, and a node
                     // never dials itself.
                     ++h.stats.reflected;
                     kj::throwFatalException(reject("our own hello came back (reflection)"));
                   }
                   h.peer_name = *name;
                   h.make_keypair();
                   h.h2.assign(h.pk, h.pk + sizeof h.pk);
                   h.h2.resize(64);
                   randombytes_buf(h.h2.data() + 32, 32);
                   h.cipher = (h.h1[7] & 1) && h.config.offer_aes_gcm && aes_available()
                                  ? Cipher::kAes256Gcm
                                  : Cipher::kChaCha20Poly1305;
                   h.h2.push_back(uint8_t(h.cipher));
                   put_name(h.h2, h.my_name);
                   put_tag(h, h.h2,
                           ad_for(kLabel2, {{h.h1.data(), h.h1.size()}, {h.h2.data(), h.h2.size()}}));
                   return h.inner->write(h.h2.data(), h.h2.size());
                 })
                 .then([&h] { return read_exact(h, h.h3, detail::kHello3Bytes); })
                 .then([&h] {
                   if (!check_tag(h, h.h3.data(),
                                  ad_for(kLabel3, {{h.h1.data(), h.h1.size()}, {h.h2.data(), h.h2.size()}}))) {
                     ++h.stats.bad_mac;
                     kj::throwFatalException(reject("initiator failed the key confirmation"));
                   }
                 })
                 .then([hs = kj::mv(hs)]() mutable { return finish(kj::mv(hs), false); });
  return with_deadline(timer, config.handshake_timeout, stats, kj::mv(run));
}

}  // namespace dog::rpc
