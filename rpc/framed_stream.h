// Internal to rpc/: the frame layer of the secure channel (what runs after the handshake).
// Not an API: secure_channel.cc builds these from a finished handshake; see secure_channel.h
// for the contract (frames, close frame, rekeying, batched writes, key removal).
#pragma once

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>

#include <kj/async-io.h>
#include <kj/timer.h>

#include "membership/keyring.h"
#include "rpc/secure_channel.h"

namespace dog::rpc::detail {

// Frame ciphers, negotiated in the handshake (the offer and the choice are both MAC'd).
// Wire values: never renumber.
enum class Cipher : uint8_t {
  kChaCha20Poly1305 = 0,  // everywhere
  kAes256Gcm = 1,         // when both CPUs have AES-NI + PCLMUL: ~3x cheaper on small frames
};

inline bool aes_available() { return crypto_aead_aes256gcm_is_available() == 1; }

// A finished handshake's output: one key per direction, the cipher, and the cluster key the
// session was made under. Wiped on destruction.
struct SessionKeys {
  Cipher cipher = Cipher::kChaCha20Poly1305;
  std::array<uint8_t, 32> tx{};
  std::array<uint8_t, 32> rx{};
  membership::Keyring::Key psk{};
  ~SessionKeys() {
    sodium_memzero(tx.data(), tx.size());
    sodium_memzero(rx.data(), rx.size());
    sodium_memzero(psk.data(), psk.size());
  }
};

// BLAKE2b-256 keyed by `key` (32 bytes, or unkeyed when null) over the concatenation of
// `parts`.
void kdf(uint8_t out[32], const uint8_t* key,
         std::initializer_list<std::pair<const void*, size_t>> parts);

// The framed AEAD stream over `inner`. `stats`, `keyring` and `timer` must outlive it.
kj::Own<kj::AsyncIoStream> make_framed_stream(kj::Own<kj::AsyncIoStream> inner,
                                              const SessionKeys& keys, ChannelConfig config,
                                              ChannelStats& stats,
                                              const membership::Keyring& keyring,
                                              kj::Timer& timer);

// For a stream made by make_framed_stream (secure_connect/secure_accept): false once its
// session's cluster key has been removed from the keyring. True for any other stream.
bool session_key_installed(kj::AsyncIoStream& stream);

}  // namespace dog::rpc::detail
