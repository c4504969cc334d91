// The frame layer of the secure channel: AEAD frames with batched writes (framed_stream.h).
#include "rpc/framed_stream.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include <kj/debug.h>

namespace dog::rpc::detail {
namespace {

using membership::Keyring;
using Bytes = std::vector<uint8_t>;

constexpr size_t kTag = crypto_aead_chacha20poly1305_ietf_ABYTES;
constexpr size_t kHeader = 4;
constexpr char kLabelRekey[] = "dog-rpc/v2/rekey";

kj::Exception frame_error(const char* why) {
  return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                       kj::str("dog-rpc channel: ", why));
}

void put_u32(uint8_t* p, uint32_t v) {
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = (v >> 24) & 0xff;
}
uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// The next key of a direction: BLAKE2b(key = current, "rekey"). Old keys are wiped.
void ratchet(std::array<uint8_t, 32>& key) {
  uint8_t next[32];
  kdf(next, key.data(), {{kLabelRekey, sizeof kLabelRekey - 1}});
  std::memcpy(key.data(), next, 32);
  sodium_memzero(next, sizeof next);
}

// FramedStream: AEAD frames over the inner stream, with batched writes.

class FramedStream final : public kj::AsyncIoStream {
 public:
  FramedStream(kj::Own<kj::AsyncIoStream> inner, const SessionKeys& keys, ChannelConfig config,
               ChannelStats& stats, const Keyring& keyring, kj::Timer& timer)
      : inner_(kj::mv(inner)), config_(config), stats_(stats), keyring_(keyring), timer_(timer) {
    tx_key_ = keys.tx;
    rx_key_ = keys.rx;
    psk_ = keys.psk;
    cipher_ = keys.cipher;
    if (config_.encrypt && cipher_ == Cipher::kAes256Gcm) {
      crypto_aead_aes256gcm_beforenm(&tx_aes_, tx_key_.data());
      crypto_aead_aes256gcm_beforenm(&rx_aes_, rx_key_.data());
    }
    in_.resize(config_.max_frame_bytes + kHeader + kTag + 64 * 1024);
  }

  ~FramedStream() noexcept(false) {
    sodium_memzero(tx_key_.data(), tx_key_.size());
    sodium_memzero(rx_key_.data(), rx_key_.size());
    sodium_memzero(psk_.data(), psk_.size());
    sodium_memzero(&tx_aes_, sizeof tx_aes_);
    sodium_memzero(&rx_aes_, sizeof rx_aes_);
  }

  // False once the cluster key the session was made under has been removed (counted once).
  bool key_installed() { return key_still_installed(); }

  // ---- read side -----------------------------------------------------------------------------
  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    return read_loop(static_cast<uint8_t*>(buffer), minBytes, maxBytes, 0);
  }

  // ---- write side ----------------------------------------------------------------------------
  kj::Promise<void> write(const void* buffer, size_t size) override {
    kj::ArrayPtr<const kj::byte> piece(static_cast<const kj::byte*>(buffer), size);
    return write(kj::arrayPtr(&piece, 1));
  }

  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    KJ_IF_MAYBE(e, write_error_) { return kj::cp(*e); }
    if (closed_) return frame_error("write after shutdownWrite");
    for (auto& p : pieces) pending_.insert(pending_.end(), p.begin(), p.end());
    // Small writes wait until KJ has nothing else to run (evalLast), so everything produced by
    // one burst of events leaves in one syscall; once a frame's worth is pending, flush after
    // the current events (evalLater) so streams keep the socket busy.
    if (flush_ == Flush::kIdle) {
      // Idle-time flush, but never later than max_flush_delay: under a loop that never runs
      // out of work, evalLast alone would wait forever.
      flush_ = Flush::kWhenIdle;
      flush_loop_ = kj::evalLast([] {})
                        .exclusiveJoin(timer_.afterDelay(config_.max_flush_delay))
                        .then([this] { return start_flush(); })
                        .eagerlyEvaluate(nullptr);
    }
    if (flush_ == Flush::kWhenIdle && pending_.size() >= config_.flush_now_bytes) {
      flush_ = Flush::kSoon;  // replaces (cancels) the evalLast, which has not run yet
      flush_loop_ = kj::evalLater([this] { return start_flush(); }).eagerlyEvaluate(nullptr);
    }
    if (pending_.size() < config_.write_buffer_bytes) return kj::READY_NOW;
    auto paf = kj::newPromiseAndFulfiller<void>();
    waiters_.push_back(kj::mv(paf.fulfiller));
    return kj::mv(paf.promise);
  }

  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }

  // Sends the close frame (an empty one) after everything pending, then shuts the socket's
  // write side. Only after a close frame is an EOF clean for the reader.
  void shutdownWrite() override {
    if (closed_) return;
    closed_ = true;
    close_pending_ = true;
    if (flush_ == Flush::kIdle) {
      flush_ = Flush::kSoon;
      flush_loop_ = kj::evalLater([this] { return start_flush(); }).eagerlyEvaluate(nullptr);
    }
  }
  void abortRead() override { inner_->abortRead(); }
  void getsockopt(int level, int option, void* value, kj::uint* length) override {
    inner_->getsockopt(level, option, value, length);
  }
  void setsockopt(int level, int option, const void* value, kj::uint length) override {
    inner_->setsockopt(level, option, value, length);
  }
  void getsockname(struct sockaddr* addr, kj::uint* length) override {
    inner_->getsockname(addr, length);
  }
  void getpeername(struct sockaddr* addr, kj::uint* length) override {
    inner_->getpeername(addr, length);
  }

 private:
  kj::Promise<size_t> read_loop(uint8_t* buf, size_t min, size_t max, size_t done) {
    for (;;) {
      size_t n = std::min(max - done, plain_.size() - plain_pos_);
      if (n > 0) {
        std::memcpy(buf + done, plain_.data() + plain_pos_, n);
        done += n;
        plain_pos_ += n;
        if (plain_pos_ == plain_.size()) {
          plain_.clear();
          plain_pos_ = 0;
        }
      }
      if (done >= min) return done;
      KJ_IF_MAYBE(e, read_error_) { return kj::cp(*e); }
      if (eof_) return done;
      if (decode_frames()) continue;
      // Need more ciphertext: make room at the end of in_.
      if (in_pos_ > 0) {
        std::memmove(in_.data(), in_.data() + in_pos_, in_len_ - in_pos_);
        in_len_ -= in_pos_;
        in_pos_ = 0;
      }
      return inner_->tryRead(in_.data() + in_len_, 1, in_.size() - in_len_)
          .then([this, buf, min, max, done](size_t got) {
            if (got == 0) {
              // Without the peer's close frame, an EOF is a cut (an attacker can end the TCP
              // stream at a frame boundary), even when no partial frame is buffered.
              ++stats_.truncated;
              read_error_ = frame_error(in_len_ > in_pos_ ? "connection ended inside a frame"
                                                          : "connection ended without a close frame");
            }
            in_len_ += got;
            return read_loop(buf, min, max, done);
          });
    }
  }

  // Decodes every complete frame in in_ into plain_. Returns true if it produced plaintext or
  // hit an error (either way the caller loops instead of reading).
  bool decode_frames() {
    bool progress = false;
    const size_t tag = config_.encrypt ? kTag : 0;
    if (in_len_ - in_pos_ >= kHeader && !key_still_installed()) {
      read_error_ = frame_error("the session's cluster key was removed");
      return true;
    }
    while (in_len_ - in_pos_ >= kHeader) {
      if (eof_) {
        ++stats_.bad_frame;
        read_error_ = frame_error("data after the close frame");
        return true;
      }
      const uint8_t* hdr = in_.data() + in_pos_;
      const uint32_t len = get_u32(hdr);
      if (len < tag || len > config_.max_frame_bytes + tag) {
        ++stats_.bad_frame;
        read_error_ = frame_error("frame length out of range");
        return true;
      }
      if (in_len_ - in_pos_ < kHeader + len) break;
      const size_t plain_len = len - tag;
      const size_t at = plain_.size();
      plain_.resize(at + plain_len);
      if (config_.encrypt) {
        uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES] = {};
        for (int i = 0; i < 8; ++i) nonce[i] = uint8_t(rx_counter_ >> (8 * i));
        unsigned long long mlen = 0;
        const int rc =
            cipher_ == Cipher::kAes256Gcm
                ? crypto_aead_aes256gcm_decrypt_afternm(plain_.data() + at, &mlen, nullptr,
                                                        hdr + kHeader, len, hdr, kHeader, nonce,
                                                        &rx_aes_)
                : crypto_aead_chacha20poly1305_ietf_decrypt(plain_.data() + at, &mlen, nullptr,
                                                            hdr + kHeader, len, hdr, kHeader,
                                                            nonce, rx_key_.data());
        if (rc != 0) {
          plain_.resize(at);
          ++stats_.bad_frame;
          read_error_ = frame_error("frame failed authentication");
          return true;
        }
      } else if (plain_len > 0) {
        std::memcpy(plain_.data() + at, hdr + kHeader, plain_len);
      }
      ++rx_counter_;
      if (config_.encrypt && rx_counter_ % config_.rekey_frames == 0) {
        ratchet(rx_key_);
        if (cipher_ == Cipher::kAes256Gcm) crypto_aead_aes256gcm_beforenm(&rx_aes_, rx_key_.data());
      }
      in_pos_ += kHeader + len;
      if (plain_len == 0) eof_ = true;  // the close frame
      progress = true;
    }
    return progress;
  }

  // A session ends once the cluster key it was made under is removed from the keyring
  // (checked whenever frames arrive or leave).
  bool key_still_installed() {
    if (!config_.encrypt || keyring_.installed(psk_)) return true;
    if (!key_removed_) {
      key_removed_ = true;
      ++stats_.key_removed;
    }
    return false;
  }

  kj::Promise<void> start_flush() {
    flush_ = Flush::kRunning;
    return flush();
  }

  kj::Promise<void> flush() {
    if (pending_.empty() && !close_pending_) {
      flush_ = Flush::kIdle;
      for (auto& w : waiters_) w->fulfill();
      waiters_.clear();
      if (closed_) inner_->shutdownWrite();
      return kj::READY_NOW;
    }
    if (!key_still_installed()) {
      flush_ = Flush::kIdle;
      auto e = frame_error("the session's cluster key was removed");
      for (auto& w : waiters_) w->reject(kj::cp(e));
      waiters_.clear();
      write_error_ = kj::mv(e);
      return kj::READY_NOW;
    }
    seal_pending();
    ++stats_.flushes;
    return inner_->write(out_.data(), out_.size())
        .then([this]() { return flush(); },
              [this](kj::Exception&& e) {
                flush_ = Flush::kIdle;
                for (auto& w : waiters_) w->reject(kj::cp(e));
                waiters_.clear();
                write_error_ = kj::mv(e);
              });
  }

  // Seals everything pending into frames of at most max_frame_bytes; the close frame (empty)
  // goes last once shutdownWrite() asked for it.
  void seal_pending() {
    const size_t tag = config_.encrypt ? kTag : 0;
    const size_t max = config_.max_frame_bytes;
    const bool close = close_pending_;
    close_pending_ = false;
    const size_t frames = (pending_.size() + max - 1) / max + (close ? 1 : 0);
    out_.resize(pending_.size() + frames * (kHeader + tag));
    uint8_t* o = out_.data();
    for (size_t f = 0, at = 0; f < frames; ++f, at += max) {
      const size_t from = std::min(at, pending_.size());
      const size_t n = std::min(max, pending_.size() - from);
      const uint8_t* src = pending_.data() + from;
      put_u32(o, uint32_t(n + tag));
      if (config_.encrypt) {
        uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES] = {};
        for (int i = 0; i < 8; ++i) nonce[i] = uint8_t(tx_counter_ >> (8 * i));
        unsigned long long clen = 0;
        if (cipher_ == Cipher::kAes256Gcm) {
          crypto_aead_aes256gcm_encrypt_afternm(o + kHeader, &clen, src, n, o,
                                                kHeader, nullptr, nonce, &tx_aes_);
        } else {
          crypto_aead_chacha20poly1305_ietf_encrypt(o + kHeader, &clen, src, n,
                                                    o, kHeader, nullptr, nonce, tx_key_.data());
        }
      } else {
        if (n > 0) std::memcpy(o + kHeader, src, n);
      }
      ++tx_counter_;
      if (config_.encrypt && tx_counter_ % config_.rekey_frames == 0) {
        ratchet(tx_key_);
        if (cipher_ == Cipher::kAes256Gcm) crypto_aead_aes256gcm_beforenm(&tx_aes_, tx_key_.data());
        ++stats_.rekeys;
      }
      ++stats_.frames_sent;
      o += kHeader + n + tag;
    }
    pending_.clear();
  }

  kj::Own<kj::AsyncIoStream> inner_;
  ChannelConfig config_;
  ChannelStats& stats_;
  const Keyring& keyring_;
  kj::Timer& timer_;
  Keyring::Key psk_{};
  bool key_removed_ = false;
  std::array<uint8_t, 32> tx_key_{};
  std::array<uint8_t, 32> rx_key_{};
  Cipher cipher_ = Cipher::kChaCha20Poly1305;
  crypto_aead_aes256gcm_state tx_aes_{};
  crypto_aead_aes256gcm_state rx_aes_{};
  uint64_t tx_counter_ = 0;
  uint64_t rx_counter_ = 0;

  Bytes in_;  // ciphertext read from inner_: [in_pos_, in_len_) not yet decoded
  size_t in_pos_ = 0;
  size_t in_len_ = 0;
  Bytes plain_;  // decoded plaintext not yet handed out: [plain_pos_, end)
  size_t plain_pos_ = 0;
  bool eof_ = false;
  kj::Maybe<kj::Exception> read_error_;

  Bytes pending_;  // plaintext written, not yet sealed
  Bytes out_;      // sealed frames being written
  enum class Flush { kIdle, kWhenIdle, kSoon, kRunning };
  Flush flush_ = Flush::kIdle;
  bool closed_ = false;         // shutdownWrite() was called
  bool close_pending_ = false;  // the close frame is still to be sealed
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> waiters_;
  kj::Maybe<kj::Exception> write_error_;
  kj::Promise<void> flush_loop_ = nullptr;  // last: destroyed first (it references the buffers)
};

}  // namespace

// BLAKE2b-256 keyed by `key` (32 bytes) over the concatenation of `parts`.
void kdf(uint8_t out[32], const uint8_t* key,
         std::initializer_list<std::pair<const void*, size_t>> parts) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, key, key ? 32 : 0, 32);
  for (auto& [p, n] : parts) crypto_generichash_update(&st, static_cast<const uint8_t*>(p), n);
  crypto_generichash_final(&st, out, 32);
  sodium_memzero(&st, sizeof st);
}

bool session_key_installed(kj::AsyncIoStream& stream) {
  auto* framed = dynamic_cast<FramedStream*>(&stream);
  return framed == nullptr || framed->key_installed();
}

kj::Own<kj::AsyncIoStream> make_framed_stream(kj::Own<kj::AsyncIoStream> inner,
                                              const SessionKeys& keys, ChannelConfig config,
                                              ChannelStats& stats, const Keyring& keyring,
                                              kj::Timer& timer) {
  return kj::heap<FramedStream>(kj::mv(inner), keys, config, stats, keyring, timer);
}

}  // namespace dog::rpc::detail
