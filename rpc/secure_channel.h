// The secure channel: an authenticated, encrypted kj::AsyncIoStream between two dog nodes.
//
// Before any Cap'n Proto byte, the two ends run a three-message handshake that proves both hold
// a key of the cluster keyring (membership::Keyring, the same one SWIM uses) and derives fresh
// session keys; after it, every byte travels in AEAD frames. docs/rpc.md has the wire layout.
//
//   1. I -> R  Hello1 = magic | offer | eI (X25519, fresh) | nI (32 random bytes) | nameI | tag1
//   2. R -> I  Hello2 = eR (fresh) | nR | cipher | nameR | tag2
//   3. I -> R  Hello3 = tag3
//   tagK = Keyring::seal(empty, AD = label_K | every handshake byte before tagK, random nonce):
//   a Poly1305 MAC under the sealing (primary) key; the receiver opens with every installed key,
//   so a cluster in the middle of a key rotation keeps connecting.
//   Session keys (Noise psk style): per direction, BLAKE2b keyed by the cluster key that
//   sealed tag1, over a role label | hash(Hello1 | Hello2) | crypto_kx's key for it.
//
// What is rejected, and how (each one disconnects and bumps a counter in ChannelStats):
//   * a peer without a cluster key, or a hello altered in flight: no tag opens (bad_mac);
//   * a replayed Hello1: its nI is in the responder's window of recent nonces (replayed). A
//     replay older than the window still fails, at Hello3, because it cannot MAC the
//     responder's fresh nR;
//   * a hello carrying our own name, i.e. our own message reflected back (reflected);
//   * a cipher the initiator did not offer (bad_cipher);
//   * a truncated or slow handshake: EOF or the handshake deadline (truncated / timeout);
//   * after the handshake, a frame that is too long, fails authentication, or ends early, and
//     an EOF without the peer's close frame, even at a frame boundary (bad_frame / truncated);
//   * any frame once the cluster key the session was made under is removed (key_removed).
//   Nothing in the receive path trusts a length before checking it. The responder makes its
//   X25519 keypair only after a Hello1 passed its checks.
//
// Frames: [u32 LE length of the sealed body][sealed body], body = AES-256-GCM when both ends
// have AES-NI (offered in Hello1, chosen in Hello2, both under the MAC so no downgrade), else
// ChaCha20-Poly1305-IETF; the header is the AD and the nonce is a per-direction counter (never
// repeats). Each direction's key is ratcheted every `rekey_frames` frames. shutdownWrite()
// sends an empty frame (the close frame); only after it is an EOF clean.
//
// Writes are batched: write() copies into a pending buffer and returns at once while less than
// `write_buffer_bytes` is pending; the flush waits until KJ has no other event to run
// (kj::evalLast) but at most `max_flush_delay`, or only for the current events once
// `flush_now_bytes` are pending, so everything a burst of events wrote leaves as one run of
// frames in one syscall. That is what keeps encryption within a few percent of plaintext for
// small RPC messages (toolchain.md §6.2: the syscall per message dominates).
//
// Plaintext (ChannelConfig::encrypt = false) is test-only: refused unless the binary links
// tests/rpc/allow_plaintext.cc (detail::plaintext_allowed()).
//
// Lifetime: the keyring and the stats must outlive the streams (a stream checks its key).
// Loop affinity: one dog::node::Loop; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_set>

#include <kj/async-io.h>
#include <kj/timer.h>

#include "membership/keyring.h"

namespace dog::rpc {

struct ChannelConfig {
  // Largest plaintext per frame. Bigger frames amortise the tag and the header; the receiver
  // buffers at most one frame. Default: 256 KiB.
  size_t max_frame_bytes = 256 * 1024;
  // write() returns immediately while fewer bytes than this wait to be flushed. Default: 1 MiB.
  size_t write_buffer_bytes = 1 << 20;
  // Pending bytes at which a flush starts right after the current events instead of waiting
  // for the loop to run out of work. Default: 64 KiB.
  size_t flush_now_bytes = 64 * 1024;
  // Longest a small write waits for the idle-time flush while the loop stays busy.
  // Default: 2 ms.
  kj::Duration max_flush_delay = 2 * kj::MILLISECONDS;
  // Each direction's key is replaced (BLAKE2b ratchet, both ends at the same frame count)
  // every this many frames: at most 2^18 * 256 KiB = 64 GiB and 2^18 AEAD invocations per
  // key, well inside AES-GCM's limits. Default: 2^18.
  uint64_t rekey_frames = uint64_t(1) << 18;
  // The whole handshake must finish within this. Default: 5 s.
  kj::Duration handshake_timeout = 5 * kj::SECONDS;
  // false: same framing and batching, no crypto and no handshake MACs. Test-only: refused
  // (FAILED) unless the binary links tests/rpc/allow_plaintext.cc, which only the tests and
  // the benchmark do (detail::plaintext_allowed()).
  bool encrypt = true;
  // Offer (and accept) AES-256-GCM when this CPU has AES-NI; otherwise, or when either side
  // declines, frames use ChaCha20-Poly1305. Default: true.
  bool offer_aes_gcm = true;
};

// Counters for everything a peer did wrong. Owned by the caller; must outlive the streams.
struct ChannelStats {
  uint64_t handshakes_ok = 0;
  uint64_t keypairs = 0;     // X25519 keypairs made (responder: only after a valid Hello1)
  uint64_t aes_gcm_sessions = 0;  // of handshakes_ok, how many chose AES-256-GCM
  uint64_t bad_mac = 0;      // handshake tag that no installed key opens (wrong cluster key)
  uint64_t replayed = 0;     // Hello1 nonce seen before
  uint64_t truncated = 0;    // EOF inside a handshake message or a frame
  uint64_t timeouts = 0;     // handshake deadline
  uint64_t bad_frame = 0;    // oversized frame, bad magic, failed AEAD open, data after close
  uint64_t reflected = 0;    // a hello carrying our own name (our message sent back to us)
  uint64_t bad_cipher = 0;   // the responder chose a cipher we did not offer
  uint64_t key_removed = 0;  // sessions ended because their cluster key was removed
  uint64_t rekeys = 0;       // send-direction key ratchets
  // Traffic (not errors): socket writes and frames after the handshake. frames/flushes > 1
  // means small writes were batched.
  uint64_t flushes = 0;
  uint64_t frames_sent = 0;
};

// Responder-side window of recently seen Hello1 nonces (bounded FIFO + set).
class HandshakeReplayWindow {
 public:
  explicit HandshakeReplayWindow(size_t capacity = 1 << 16) : capacity_(capacity) {}
  // Returns false if `nonce` was seen within the window; records it otherwise.
  bool accept(const std::string& nonce);

 private:
  size_t capacity_;
  std::deque<std::string> order_;
  std::unordered_set<std::string> seen_;
};

struct SecureSession {
  kj::Own<kj::AsyncIoStream> stream;
  std::string peer_name;  // authenticated by the handshake MAC
};

// Runs the initiator side over `inner` and resolves to the framed stream. Fails with
// DISCONNECTED (the caller's reaction: reconnect later) on any rejection.
kj::Promise<SecureSession> secure_connect(kj::Own<kj::AsyncIoStream> inner,
                                          const membership::Keyring& keyring,
                                          std::string my_name, kj::Timer& timer,
                                          ChannelConfig config, ChannelStats& stats);

// Runs the responder side. `window` may be shared by all of a node's listeners.
kj::Promise<SecureSession> secure_accept(kj::Own<kj::AsyncIoStream> inner,
                                         const membership::Keyring& keyring,
                                         std::string my_name, kj::Timer& timer,
                                         ChannelConfig config, ChannelStats& stats,
                                         HandshakeReplayWindow& window);

namespace detail {
// Whether ChannelConfig::encrypt = false may be used in this binary (rpc/plaintext_guard.cc).
bool plaintext_allowed();

// Sizes of the handshake messages, for tests that forge or cut them.
constexpr size_t kNameBytes = 64;
constexpr size_t kHello1Bytes = 8 + 32 + 32 + 1 + kNameBytes + membership::Keyring::kOverhead;
constexpr size_t kHello2Bytes = 32 + 32 + 1 + 1 + kNameBytes + membership::Keyring::kOverhead;
constexpr size_t kHello3Bytes = membership::Keyring::kOverhead;
}  // namespace detail

}  // namespace dog::rpc
