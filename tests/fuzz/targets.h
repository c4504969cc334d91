// libFuzzer targets: one entry function per parser a peer or a client reaches (README.md).
//
// Each entry takes arbitrary bytes and must return 0 without crashing, leaking or tripping a
// sanitizer; an invariant it checks itself fails through fuzz_check(), which aborts, so a
// fuzzer records the input and the replay test (replay_test.cc) fails. fuzz_main.cc turns one
// entry into LLVMFuzzerTestOneInput; replay_test.cc links them all and replays tests/fuzz/<name>/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace dog::fuzz {

int http_connection(const uint8_t* data, size_t size);  // http_target.cc
int ws_codec(const uint8_t* data, size_t size);         // ws_codec_target.cc
int swim_packet(const uint8_t* data, size_t size);      // swim_target.cc
int rpc_handshake(const uint8_t* data, size_t size);    // channel_target.cc
int rpc_frames(const uint8_t* data, size_t size);       // channel_target.cc
int node_calls(const uint8_t* data, size_t size);       // node_calls_target.cc
int object_id(const uint8_t* data, size_t size);        // object_id_target.cc
int chat_message(const uint8_t* data, size_t size);     // chat_target.cc

// An invariant of the code under test; a violation aborts (the fuzzer saves the input).
inline void fuzz_check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "dog fuzz: invariant violated: %s\n", what);
  std::abort();
}

// Reads the fuzzer's bytes front to back; past the end every read yields zeros/empty.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool empty() const { return at_ >= n_; }
  size_t left() const { return n_ - at_; }
  uint8_t u8() { return at_ < n_ ? p_[at_++] : 0; }
  uint16_t u16() { return uint16_t(u8() | u8() << 8); }
  // Up to `max` bytes (fewer at the end of the input).
  const uint8_t* take(size_t max, size_t* got) {
    *got = max < left() ? max : left();
    const uint8_t* at = p_ + at_;
    at_ += *got;
    return at;
  }
  const uint8_t* rest(size_t* got) { return take(left(), got); }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t at_ = 0;
};

}  // namespace dog::fuzz
