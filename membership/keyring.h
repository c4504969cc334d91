// Cluster keyring and AEAD sealing (libsodium XChaCha20-Poly1305 IETF).
//
// One primary key seals; every installed key may open. Rotation with no downtime, as in Serf's
// KeyManager: install(new) on every node -> use(new) on every node -> remove(old) everywhere.
// Self-contained (no membership types) so rpc/ can reuse it; built as target `dog_keyring`.
//
// Sealed layout:  [version=1][nonce 24 B][ciphertext][tag 16 B]      overhead = 41 B
// The caller supplies the nonce (membership uses session id | counter | random tail, which also
// drives replay detection) and the associated data (a channel label, so a datagram can never be
// replayed as a stream frame).
//
// Thread-safety: none; one owning event loop. Not copyable (holds key material, wiped on
// destruction).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace dog::membership {

class Keyring {
 public:
  static constexpr size_t kKeyBytes = 32;
  static constexpr size_t kNonceBytes = 24;
  static constexpr size_t kTagBytes = 16;
  static constexpr uint8_t kVersion = 1;
  static constexpr size_t kOverhead = 1 + kNonceBytes + kTagBytes;

  using Key = std::array<uint8_t, kKeyBytes>;
  using Nonce = std::array<uint8_t, kNonceBytes>;

  // The primary key is installed and used for sealing.
  explicit Keyring(const Key& primary);
  ~Keyring();
  Keyring(const Keyring&) = delete;
  Keyring& operator=(const Keyring&) = delete;

  // A fresh random key (libsodium CSPRNG).
  static Key generate();

  // Adds a key that can open but does not seal. Returns false if already installed.
  bool install(const Key& key);
  // Makes an installed key the primary. Returns false if it is not installed.
  bool use(const Key& key);
  // Removes a non-primary key. Returns false if absent or primary (the primary can't be removed).
  bool remove(const Key& key);
  size_t size() const { return keys_.size(); }
  bool is_primary(const Key& key) const;

  // Seals `plain` into `out`, which must hold plain.size() + kOverhead bytes.
  // Returns the number of bytes written.
  size_t seal(std::span<const uint8_t> plain, std::span<const uint8_t> ad, const Nonce& nonce,
              std::span<uint8_t> out) const;

  // Opens `sealed` into `out` (at least sealed.size() - kOverhead bytes), trying the primary
  // first and then every other key. Returns the plaintext length and fills `nonce`, or nullopt if
  // the version is unknown, the input is too short, or no key authenticates it.
  std::optional<size_t> open(std::span<const uint8_t> sealed, std::span<const uint8_t> ad,
                             std::span<uint8_t> out, Nonce* nonce) const;

  // For protocols that bind derived secrets to the cluster key (the rpc/ handshake mixes it
  // into its session keys): open() that also copies the key that opened `sealed` into
  // *opened_with, a copy of the sealing key, and whether `key` is still installed. Callers
  // wipe their copies.
  std::optional<size_t> open(std::span<const uint8_t> sealed, std::span<const uint8_t> ad,
                             std::span<uint8_t> out, Nonce* nonce, Key* opened_with) const;
  Key primary() const { return keys_.front(); }
  // Every installed key, the primary first.
  const std::vector<Key>& keys() const { return keys_; }
  bool installed(const Key& key) const;

 private:
  std::vector<Key> keys_;  // keys_[0] is the primary
};

}  // namespace dog::membership
