// Object ids: 256-bit names for Durable Objects, bound to the namespace that minted them.
//
// Layout (32 bytes, printed as 64 lowercase hex characters):
//
//   bytes [0, 24)   body. id_from_name: keyed BLAKE2b-192 of the name under the namespace's name
//                   key. new_unique_id: 24 random bytes (libsodium randombytes).
//   bytes [24, 32)  tag. Keyed BLAKE2b-64 of the body under the namespace's tag key.
//
// Both keys are derived from the namespace string with keyed BLAKE2b-256 and distinct
// domain-separation keys, so two namespaces never share a name key or a tag key. An id parsed
// with id_from_string() must carry the tag of the namespace it is parsed for: a typo, a truncated
// id, an id of another namespace or a made-up string is rejected (a random 64-hex string passes
// with probability 2^-64).
//
// The tag binds an id to its namespace; it is NOT a secret MAC. Anybody who knows a namespace
// name can mint ids in it, exactly as anybody can call id_from_name(). TODO(security): mix a
// cluster secret into the key derivation if ids must become unforgeable by clients.
//
// The first 8 bytes read big-endian are the routing key (routing_key()); routing_table.h maps it
// to an owner. The body is uniformly distributed for both kinds of id, so placement is uniform.
//
// THE LAYOUT AND THE KEY DERIVATION ARE PART OF THE PERSISTENT FORMAT: ids are stored by clients
// and servers. tests/routing/fixed_vectors_test.cc pins them; do not change them.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace dog::routing {

class ObjectId {
 public:
  static constexpr size_t kSize = 32;
  static constexpr size_t kBodySize = 24;
  static constexpr size_t kTagSize = 8;
  static constexpr size_t kHexSize = 2 * kSize;

  // The all-zero id. It is not valid in any namespace (its tag does not match).
  ObjectId() = default;
  explicit ObjectId(const std::array<uint8_t, kSize>& bytes) : bytes_(bytes) {}

  const std::array<uint8_t, kSize>& bytes() const { return bytes_; }

  // 64 lowercase hex characters. The inverse of id_from_string().
  std::string to_string() const;

  // The first 8 bytes read big-endian: the input of placement (routing_table.h).
  uint64_t routing_key() const noexcept;

  friend bool operator==(const ObjectId&, const ObjectId&) = default;
  friend auto operator<=>(const ObjectId&, const ObjectId&) = default;

 private:
  std::array<uint8_t, kSize> bytes_{};
};

// What the caller should do about a rejected id string: all three mean "bad request".
enum class IdError {
  kBadLength,       // not exactly 64 characters
  kBadHex,          // a character outside [0-9a-f] (upper case is rejected: one spelling per id)
  kWrongNamespace,  // well-formed, but the tag does not match this namespace
};

// Result of id_from_string(): an id, or an error code with a human-readable message.
struct IdParseResult {
  std::optional<ObjectId> id;
  IdError error = IdError::kBadLength;  // meaningful only when !id
  std::string message;                  // empty on success

  bool ok() const { return id.has_value(); }
  explicit operator bool() const { return ok(); }
};

// Fills `out` with random bytes. Production code uses libsodium's randombytes; tests and the
// benchmark pass a seeded generator so runs are reproducible.
using EntropyFn = std::function<void(std::span<uint8_t> out)>;

// A namespace with its keys derived once. Cheap to copy (64 bytes of keys plus the name).
// Use it on hot paths instead of the free functions, which derive the keys on every call.
class IdNamespace {
 public:
  explicit IdNamespace(std::string_view name);

  const std::string& name() const { return name_; }

  // Deterministic: the same (namespace, name) gives the same id on every node and across
  // restarts. Different namespaces give unrelated ids.
  ObjectId from_name(std::string_view name) const;

  // A fresh id from 24 random bytes of libsodium's CSPRNG.
  ObjectId new_unique() const;

  // A fresh id whose body comes from `entropy` (24 bytes are requested).
  ObjectId new_unique(const EntropyFn& entropy) const;

  // Parses 64 lowercase hex characters and checks that the id belongs to this namespace.
  IdParseResult parse(std::string_view hex) const;

  // True if the tag of `id` matches this namespace.
  bool owns(const ObjectId& id) const;

 private:
  ObjectId seal(const uint8_t* body) const;  // appends the tag to a 24-byte body

  std::string name_;
  std::array<uint8_t, 32> name_key_{};
  std::array<uint8_t, 32> tag_key_{};
};

// Free-function forms of the IdNamespace methods (they derive the namespace keys per call).
ObjectId id_from_name(std::string_view ns, std::string_view name);
ObjectId new_unique_id(std::string_view ns);
ObjectId new_unique_id(std::string_view ns, const EntropyFn& entropy);
IdParseResult id_from_string(std::string_view ns, std::string_view hex);

// A short stable name for an IdError ("bad_length", "bad_hex", "wrong_namespace").
std::string_view to_string(IdError error);

}  // namespace dog::routing

template <>
struct std::hash<dog::routing::ObjectId> {
  // Ids are uniformly distributed, so 8 bytes of them are a good hash.
  size_t operator()(const dog::routing::ObjectId& id) const noexcept {
    return static_cast<size_t>(id.routing_key());
  }
};
