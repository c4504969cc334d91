// Plain C++ views of the membership wire messages (wire.capnp) and their packed codec.
//
// The codec is the only code that touches Cap'n Proto. decode_*() copy every field into plain
// structs under explicit limits, catching every Cap'n Proto exception: malformed input is an
// expected outcome (returns false), never a crash. Structs are reused across calls so steady
// traffic does no per-packet heap allocation beyond small-string growth.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "membership/types.h"

namespace dog::membership {

// Associated data bound into every seal (membership/keyring.h), so a datagram can never be
// accepted as a stream frame or vice versa. Part of the protocol: changing them is a new version.
inline constexpr uint8_t kDatagramAd[] = {'d', 'o', 'g', '/', 's', 'w', 'i', 'm', '/', 'd', '1'};
inline constexpr uint8_t kStreamAd[] = {'d', 'o', 'g', '/', 's', 'w', 'i', 'm', '/', 's', '1'};

// Nonce layout used by the membership core: [session id LE64][counter LE64][random 8 B]. The
// receiver's replay window keys on (sender name, session id, counter).

// WARNING: ONLY APPEND. Values mirror wire.capnp and are part of the protocol.
enum class MsgKind : uint8_t { kPing = 0, kPingReq = 1, kAck = 2, kNack = 3, kGossip = 4 };
enum class UpdateKind : uint8_t { kAlive = 0, kSuspect = 1, kDead = 2, kLeft = 3, kUser = 4 };
enum class SyncKind : uint8_t { kDigest = 0, kFull = 1, kInSync = 2 };

struct Update {
  UpdateKind kind = UpdateKind::kAlive;
  std::string node;          // subject; for kUser the origin
  uint64_t incarnation = 0;  // for kUser the origin's sequence number
  std::string addr;          // kAlive
  std::string from;          // kSuspect / kDead accuser
  Meta meta;                 // kAlive
  std::string payload;       // kUser
  uint64_t session = 0;      // subject's session (not kUser); 0 = unknown: compare incarnations only
};

struct Datagram {
  std::string from;
  MsgKind kind = MsgKind::kGossip;
  uint32_t seq = 0;
  std::string target;
  std::string target_addr;
  bool want_nack = false;
  std::vector<Update> updates;

  void clear() {
    from.clear(); target.clear(); target_addr.clear();
    kind = MsgKind::kGossip; seq = 0; want_nack = false; updates.clear();
  }
};

struct PushPull {
  std::string from;
  std::string from_addr;
  SyncKind kind = SyncKind::kDigest;
  bool join = false;
  bool want_reply = false;
  uint64_t digest = 0;
  std::vector<MemberInfo> members;
};

// Caps applied while decoding untrusted (if authenticated) bytes.
struct WireLimits {
  uint64_t traversal_limit_words = 1 << 16;
  int nesting_limit = 16;
  size_t max_name_bytes = 128;
  size_t max_addr_bytes = 256;
  size_t max_meta_bytes = 512;
  size_t max_payload_bytes = 512;
  size_t max_updates = 64;
  size_t max_members = 100000;
};

// Packed encoding. `out` is overwritten.
void encode(const Datagram& d, std::vector<uint8_t>& out);
void encode(const PushPull& p, std::vector<uint8_t>& out);

// Returns false (and leaves `out` unspecified) on any malformed, oversized or unknown input.
bool decode(std::span<const uint8_t> bytes, const WireLimits& limits, Datagram& out);
bool decode(std::span<const uint8_t> bytes, const WireLimits& limits, PushPull& out);

// Estimate of the bytes one update adds to a packed datagram. Used by the MTU packer, which
// always verifies the final sealed size and trims, so this need not be an upper bound.
size_t encoded_size_estimate(const Update& u);

}  // namespace dog::membership
