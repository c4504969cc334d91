#include "membership/keyring.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace dog::membership {

namespace {
void ensure_sodium() {
  // sodium_init() is idempotent and thread-safe; < 0 means no usable entropy source.
  if (sodium_init() < 0) throw std::runtime_error("libsodium initialisation failed");
}
}  // namespace

Keyring::Keyring(const Key& primary) {
  ensure_sodium();
  keys_.push_back(primary);
}

Keyring::~Keyring() {
  for (auto& k : keys_) sodium_memzero(k.data(), k.size());
}

Keyring::Key Keyring::generate() {
  ensure_sodium();
  Key k;
  crypto_aead_xchacha20poly1305_ietf_keygen(k.data());
  return k;
}

bool Keyring::install(const Key& key) {
  if (std::find(keys_.begin(), keys_.end(), key) != keys_.end()) return false;
  keys_.push_back(key);
  return true;
}

bool Keyring::use(const Key& key) {
  auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end()) return false;
  std::iter_swap(keys_.begin(), it);
  return true;
}

bool Keyring::remove(const Key& key) {
  auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end() || it == keys_.begin()) return false;
  sodium_memzero(it->data(), it->size());
  keys_.erase(it);
  return true;
}

bool Keyring::is_primary(const Key& key) const { return keys_.front() == key; }

size_t Keyring::seal(std::span<const uint8_t> plain, std::span<const uint8_t> ad,
                     const Nonce& nonce, std::span<uint8_t> out) const {
  out[0] = kVersion;
  std::memcpy(out.data() + 1, nonce.data(), kNonceBytes);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + 1 + kNonceBytes, &clen, plain.data(),
                                             plain.size(), ad.data(), ad.size(), nullptr,
                                             nonce.data(), keys_.front().data());
  return 1 + kNonceBytes + static_cast<size_t>(clen);
}

std::optional<size_t> Keyring::open(std::span<const uint8_t> sealed, std::span<const uint8_t> ad,
                                    std::span<uint8_t> out, Nonce* nonce) const {
  return open(sealed, ad, out, nonce, nullptr);
}

bool Keyring::installed(const Key& key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

std::optional<size_t> Keyring::open(std::span<const uint8_t> sealed, std::span<const uint8_t> ad,
                                    std::span<uint8_t> out, Nonce* nonce, Key* opened_with) const {
  if (sealed.size() < kOverhead || sealed[0] != kVersion) return std::nullopt;
  const uint8_t* n = sealed.data() + 1;
  const uint8_t* c = n + kNonceBytes;
  const size_t clen = sealed.size() - 1 - kNonceBytes;
  if (out.size() < clen - kTagBytes) return std::nullopt;
  for (const Key& k : keys_) {
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), &mlen, nullptr, c, clen, ad.data(),
                                                   ad.size(), n, k.data()) == 0) {
      if (nonce) std::memcpy(nonce->data(), n, kNonceBytes);
      if (opened_with) *opened_with = k;
      return static_cast<size_t>(mlen);
    }
  }
  return std::nullopt;
}

}  // namespace dog::membership
