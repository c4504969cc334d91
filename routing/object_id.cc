#include "routing/object_id.h"

#include <sodium.h>

#include <cstring>
#include <stdexcept>

namespace dog::routing {
namespace {

// Domain-separation keys for the two per-namespace keys. crypto_generichash needs keys of at
// least crypto_generichash_KEYBYTES_MIN (16) bytes; both strings are longer. Persistent format:
// never change these.
constexpr std::string_view kNameKeyDomain = "dog.routing.id.name.v1";
constexpr std::string_view kTagKeyDomain = "dog.routing.id.tag.v1";

void ensure_sodium() {
  // sodium_init() is idempotent and thread-safe; it returns 1 if already initialised.
  static const int rc = sodium_init();
  if (rc < 0) throw std::runtime_error("libsodium initialisation failed");
}

void keyed_hash(uint8_t* out, size_t out_len, std::string_view key, const void* msg,
                size_t msg_len) {
  crypto_generichash(out, out_len, static_cast<const unsigned char*>(msg), msg_len,
                     reinterpret_cast<const unsigned char*>(key.data()), key.size());
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string ObjectId::to_string() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(kHexSize, '0');
  for (size_t i = 0; i < kSize; ++i) {
    out[2 * i] = kDigits[bytes_[i] >> 4];
    out[2 * i + 1] = kDigits[bytes_[i] & 0xf];
  }
  return out;
}

uint64_t ObjectId::routing_key() const noexcept {
  uint64_t key = 0;
  for (size_t i = 0; i < 8; ++i) key = (key << 8) | bytes_[i];
  return key;
}

IdNamespace::IdNamespace(std::string_view name) : name_(name) {
  ensure_sodium();
  keyed_hash(name_key_.data(), name_key_.size(), kNameKeyDomain, name.data(), name.size());
  keyed_hash(tag_key_.data(), tag_key_.size(), kTagKeyDomain, name.data(), name.size());
}

ObjectId IdNamespace::seal(const uint8_t* body) const {
  std::array<uint8_t, ObjectId::kSize> bytes{};
  std::memcpy(bytes.data(), body, ObjectId::kBodySize);
  crypto_generichash(bytes.data() + ObjectId::kBodySize, ObjectId::kTagSize, body,
                     ObjectId::kBodySize, tag_key_.data(), tag_key_.size());
  return ObjectId(bytes);
}

ObjectId IdNamespace::from_name(std::string_view name) const {
  uint8_t body[ObjectId::kBodySize];
  crypto_generichash(body, sizeof body, reinterpret_cast<const unsigned char*>(name.data()),
                     name.size(), name_key_.data(), name_key_.size());
  return seal(body);
}

ObjectId IdNamespace::new_unique() const {
  uint8_t body[ObjectId::kBodySize];
  randombytes_buf(body, sizeof body);
  return seal(body);
}

ObjectId IdNamespace::new_unique(const EntropyFn& entropy) const {
  uint8_t body[ObjectId::kBodySize];
  entropy(std::span<uint8_t>(body, sizeof body));
  return seal(body);
}

bool IdNamespace::owns(const ObjectId& id) const {
  const ObjectId resealed = seal(id.bytes().data());
  // Constant time: the comparison does not leak how many tag bytes matched.
  return sodium_memcmp(resealed.bytes().data() + ObjectId::kBodySize,
                       id.bytes().data() + ObjectId::kBodySize, ObjectId::kTagSize) == 0;
}

IdParseResult IdNamespace::parse(std::string_view hex) const {
  IdParseResult result;
  if (hex.size() != ObjectId::kHexSize) {
    result.error = IdError::kBadLength;
    result.message = "object id must be " + std::to_string(ObjectId::kHexSize) +
                     " hex characters, got " + std::to_string(hex.size());
    return result;
  }
  std::array<uint8_t, ObjectId::kSize> bytes{};
  for (size_t i = 0; i < ObjectId::kHexSize; ++i) {
    const int v = hex_value(hex[i]);
    if (v < 0) {
      result.error = IdError::kBadHex;
      result.message =
          "object id has a character outside [0-9a-f] at position " + std::to_string(i);
      return result;
    }
    bytes[i / 2] = static_cast<uint8_t>((bytes[i / 2] << 4) | v);
  }
  ObjectId id(bytes);
  if (!owns(id)) {
    result.error = IdError::kWrongNamespace;
    result.message = "object id does not belong to namespace '" + name_ + "'";
    return result;
  }
  result.id = id;
  return result;
}

ObjectId id_from_name(std::string_view ns, std::string_view name) {
  return IdNamespace(ns).from_name(name);
}

ObjectId new_unique_id(std::string_view ns) {
  return IdNamespace(ns).new_unique();
}

ObjectId new_unique_id(std::string_view ns, const EntropyFn& entropy) {
  return IdNamespace(ns).new_unique(entropy);
}

IdParseResult id_from_string(std::string_view ns, std::string_view hex) {
  return IdNamespace(ns).parse(hex);
}

std::string_view to_string(IdError error) {
  switch (error) {
    case IdError::kBadLength:
      return "bad_length";
    case IdError::kBadHex:
      return "bad_hex";
    case IdError::kWrongNamespace:
      return "wrong_namespace";
  }
  return "unknown";
}

}  // namespace dog::routing
