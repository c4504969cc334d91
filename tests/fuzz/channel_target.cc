// Targets: the rpc/ secure channel (rpc/secure_channel.h): the three-message handshake, and the
// AEAD frame layer that runs after it (rpc/framed_stream.h), over in-memory KJ streams with a
// fixed cluster key and a manual KJ timer.
//
// rpc_handshake input: [mode][bytes...]. mode % 4:
//   0  `bytes` are what an initiator sends to secure_accept (no key: every tag fails);
//   1  `bytes` are what a responder answers to secure_connect (likewise);
//   2  the target is an initiator that holds the key: Hello1's fields (offer, eI, nI, name) come
//      from the input and the target MACs it; Hello3 is MAC'd correctly if bit 2 of mode is set
//      (else taken from the input); the rest of the input follows as frames;
//   3  the same as a responder to secure_connect: Hello2 from the input, MAC'd by the target.
// Checked: a responder makes no keypair unless a Hello1 authenticated; a handshake that succeeds
// names the peer the input named; nothing hangs past the handshake deadline.
//
// rpc_frames input: [flags][records...], records [op][len LE16][bytes]. A real framed stream
// (the peer) writes the plaintext records into a buffer as sealed frames (op 0), or closes
// (op 4); raw bytes (op 1), a byte flip (op 2) and a cut (op 3) alter the buffer. A second
// framed stream with the mirrored keys then reads the buffer to the end. flags choose the cipher
// and the rekey interval (1-4 frames), so ratchets happen. Checked: without alterations the
// reader returns exactly what was written and ends cleanly; with them, it fails or returns a
// prefix of it, never other bytes.
#include <sodium.h>

#include <cstring>
#include <functional>
#include <string>

#include <kj/async-io.h>
#include <kj/timer.h>

#include "membership/keyring.h"
#include "rpc/framed_stream.h"
#include "rpc/secure_channel.h"
#include "tests/fuzz/targets.h"

namespace dog::fuzz {
namespace {

using membership::Keyring;
using Bytes = std::vector<uint8_t>;

// Reads come from `in` (then EOF, unless `on_drained` adds more); writes collect in `out`.
class MemStream final : public kj::AsyncIoStream {
 public:
  std::string in;
  size_t at = 0;
  std::string out;
  std::function<void(MemStream&)> on_drained;  // called once, when a read finds `in` used up

  kj::Promise<size_t> tryRead(void* buffer, size_t, size_t maxBytes) override {
    if (at == in.size() && on_drained) {
      auto f = std::move(on_drained);
      on_drained = nullptr;
      f(*this);
    }
    size_t n = std::min(maxBytes, in.size() - at);
    std::memcpy(buffer, in.data() + at, n);
    at += n;
    return n;
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    out.append(static_cast<const char*>(buffer), size);
    return kj::READY_NOW;
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    for (auto& p : pieces) out.append(reinterpret_cast<const char*>(p.begin()), p.size());
    return kj::READY_NOW;
  }
  kj::Promise<void> whenWriteDisconnected() override { return kj::NEVER_DONE; }
  void shutdownWrite() override {}
};

Keyring::Key cluster_key() {
  Keyring::Key k;
  k.fill(0x5a);
  return k;
}

// The KJ event loop and the keyring live for the whole process (made once, not per input): an
// input leaves nothing queued on the loop (Env's destructor checks it), and the keyring is only
// read, so every input still starts from the same state.
struct Shared {
  kj::EventLoop loop;
  kj::WaitScope ws{loop};
  Keyring ring{cluster_key()};
};
Shared& shared() {
  static Shared* s = new Shared();
  return *s;
}

// One input's view: the shared loop and keyring, and its own manual clock at the origin.
struct Env {
  Shared& s = shared();
  kj::WaitScope& ws = s.ws;
  const Keyring& ring = s.ring;
  kj::TimerImpl timer{kj::origin<kj::TimePoint>()};
  static Keyring::Key key() { return cluster_key(); }
  Env() = default;
  Env(const Env&) = delete;
  ~Env() noexcept(false) {
    ws.poll();  // what tearing the input's streams down queued, if anything
    fuzz_check(!s.loop.isRunnable(), "an input leaves nothing queued on the shared loop");
  }
  // Polls `p` to completion, moving the manual clock to each next timer; false if it failed.
  template <typename T>
  bool finish(kj::Promise<T>& p, T* out = nullptr) {
    for (int i = 0; i < 64 && !p.poll(ws); ++i) {
      KJ_IF_MAYBE(next, timer.nextEvent()) { timer.advanceTo(*next); }
      else break;
    }
    if (!p.poll(ws)) return false;
    try {
      if constexpr (std::is_void_v<T>) p.wait(ws);
      else if (out) *out = p.wait(ws);
      else p.wait(ws);
      return true;
    } catch (const kj::Exception&) {
      return false;
    }
  }
};

std::string ad(const char* label, std::initializer_list<std::string_view> parts) {
  std::string a(label);
  for (auto p : parts) a.append(p);
  return a;
}

// The 41-byte handshake tag: a seal of nothing under the cluster key, AD = label | transcript.
std::string tag(const Keyring& ring, const std::string& ad_bytes) {
  Keyring::Nonce n;
  randombytes_buf(n.data(), n.size());
  std::string t(Keyring::kOverhead, '\0');
  ring.seal({}, {reinterpret_cast<const uint8_t*>(ad_bytes.data()), ad_bytes.size()}, n,
            {reinterpret_cast<uint8_t*>(t.data()), t.size()});
  return t;
}

std::string take(Input& in, size_t n) {
  size_t got = 0;
  const uint8_t* p = in.take(n, &got);
  std::string s(reinterpret_cast<const char*>(p), got);
  s.resize(n, '\0');
  return s;
}

// Reads a session to its end (bounded); the bytes do not matter here.
void drain(Env& env, kj::AsyncIoStream& s) {
  char buf[4096];
  for (int i = 0; i < 64; ++i) {
    auto p = s.tryRead(buf, 1, sizeof buf);
    size_t n = 0;
    if (!env.finish(p, &n) || n == 0) return;
  }
}

}  // namespace

int rpc_handshake(const uint8_t* data, size_t size) {
  Env env;
  rpc::ChannelConfig cfg;
  // An input is at most 4096 bytes (scripts/fuzz.sh), so no frame after the handshake can be
  // longer; the default 256 KiB made every session zero a 320 KiB read buffer (an mmap under
  // ASan), most of a successful handshake's cost. A longer announced length now fails as too
  // long instead of as cut short; both paths were and are reachable.
  cfg.max_frame_bytes = 4096;
  rpc::ChannelStats stats;
  rpc::HandshakeReplayWindow window;
  Input in(data, size);
  const uint8_t mode = in.u8();
  auto stream = kj::heap<MemStream>();
  MemStream& mem = *stream;
  constexpr size_t kName = rpc::detail::kNameBytes;
  std::string h1, peer_name;

  switch (mode % 4) {
    case 0:
    case 1: {
      size_t n = 0;
      const uint8_t* rest = in.rest(&n);
      mem.in.assign(reinterpret_cast<const char*>(rest), n);
      break;
    }
    case 2: {
      // Hello1 = magic(8) | eI(32) | nI(32) | name [len][64] | tag1
      h1 = std::string("DOGRPC\x02", 7) + char(in.u8() & 1) + take(in, 64);
      const uint8_t len = in.u8() % (kName + 2);  // kName + 1 is one too long
      std::string name = take(in, kName);
      peer_name = name.substr(0, std::min<size_t>(len, kName));
      h1 += char(len) + name;
      h1 += tag(env.ring, ad("dog-rpc/hello1", {h1}));
      mem.in = h1;
      std::string rest = take(in, in.left());
      const bool good_hello3 = mode & 4;
      mem.on_drained = [&env, h1, rest, good_hello3](MemStream& m) {
        // m.out holds Hello2 now: the key confirmation covers Hello1 | Hello2.
        m.in += good_hello3 ? tag(env.ring, ad("dog-rpc/hello3", {h1, m.out})) : std::string();
        m.in += rest;
      };
      break;
    }
    case 3: {
      std::string fields = take(in, 64) + char(in.u8() & 1);  // eR | nR | cipher
      const uint8_t len = in.u8() % (kName + 2);
      std::string name = take(in, kName);
      peer_name = name.substr(0, std::min<size_t>(len, kName));
      std::string rest = take(in, in.left());
      mem.on_drained = [&env, fields, len, name, rest](MemStream& m) {
        // m.out holds the initiator's Hello1.
        std::string h2 = fields + char(len) + name;
        h2 += tag(env.ring, ad("dog-rpc/hello2", {m.out, h2}));
        m.in += h2 + rest;
      };
      break;
    }
  }

  const bool responder = mode % 4 == 0 || mode % 4 == 2;
  auto p = responder ? rpc::secure_accept(kj::mv(stream), env.ring, "fuzz-responder", env.timer, cfg, stats, window)
                     : rpc::secure_connect(kj::mv(stream), env.ring, "fuzz-initiator", env.timer, cfg, stats);
  rpc::SecureSession session;
  const bool ok = env.finish(p, &session);
  if (std::getenv("DOG_FUZZ_VERBOSE"))
    std::fprintf(stderr, "rpc_handshake: mode %d ok %d keypairs %llu bad_mac %llu bad_frame %llu\n", mode % 4, ok,
                 (unsigned long long)stats.keypairs, (unsigned long long)stats.bad_mac, (unsigned long long)stats.bad_frame);
  if (mode % 4 == 0) fuzz_check(stats.keypairs == 0 && !ok, "no keypair and no session without the key");
  if (mode % 4 == 1) fuzz_check(!ok, "no session without the key");
  if (ok) {
    fuzz_check(stats.handshakes_ok == 1, "a session is counted");
    fuzz_check(session.peer_name == peer_name, "the session names the peer its hello named");
    drain(env, *session.stream);
  }
  return 0;
}

int rpc_frames(const uint8_t* data, size_t size) {
  Env env;
  rpc::ChannelStats stats;
  Input in(data, size);
  const uint8_t flags = in.u8();
  rpc::ChannelConfig cfg;
  cfg.max_frame_bytes = 1024;
  cfg.rekey_frames = 1 + (flags & 3);
  rpc::detail::SessionKeys writer_keys, reader_keys;
  writer_keys.cipher = reader_keys.cipher = (flags & 4) && rpc::detail::aes_available()
                                                ? rpc::detail::Cipher::kAes256Gcm
                                                : rpc::detail::Cipher::kChaCha20Poly1305;
  writer_keys.tx.fill(1);
  writer_keys.rx.fill(2);
  reader_keys.tx.fill(2);
  reader_keys.rx.fill(1);
  writer_keys.psk = reader_keys.psk = Env::key();

  auto sink = kj::heap<MemStream>();
  MemStream& wire = *sink;
  auto writer = rpc::detail::make_framed_stream(kj::mv(sink), writer_keys, cfg, stats, env.ring, env.timer);
  std::string written;   // plaintext the writer accepted
  bool altered = false;  // raw bytes, a flip or a cut: the reader may fail
  bool closed = false;
  for (int records = 0; records < 32 && !in.empty(); ++records) {
    const uint8_t op = in.u8();
    const uint16_t len = in.u16();
    size_t got = 0;
    const uint8_t* bytes = op % 8 <= 1 ? in.take(len, &got) : nullptr;
    switch (op % 8) {
      case 0: {
        if (closed) break;
        auto w = writer->write(bytes, got);
        fuzz_check(env.finish(w), "a write to the peer's stream succeeds");
        written.append(reinterpret_cast<const char*>(bytes), got);
        env.timer.advanceTo(env.timer.now() + cfg.max_flush_delay);
        env.ws.poll();
        break;
      }
      case 1: wire.out.append(reinterpret_cast<const char*>(bytes), got), altered = true; break;
      case 2:
        if (!wire.out.empty()) wire.out[len % wire.out.size()] ^= char(1 + (op >> 3)), altered = true;
        break;
      case 3:
        if (len < wire.out.size()) wire.out.resize(len), altered = true;
        break;
      case 4:
        writer->shutdownWrite();
        closed = true;
        env.ws.poll();
        break;
      default: break;
    }
  }
  env.timer.advanceTo(env.timer.now() + cfg.max_flush_delay);
  env.ws.poll();

  auto source = kj::heap<MemStream>();
  source->in = wire.out;
  auto reader = rpc::detail::make_framed_stream(kj::mv(source), reader_keys, cfg, stats, env.ring, env.timer);
  std::string got;
  bool clean = false;
  char buf[4096];
  for (int i = 0; i < 100000; ++i) {
    auto p = reader->tryRead(buf, 1, sizeof buf);
    size_t n = 0;
    if (!env.finish(p, &n)) break;
    if (n == 0) {
      clean = true;
      break;
    }
    got.append(buf, n);
  }
  if (!altered) {
    fuzz_check(got == written, "the reader returns exactly what the peer wrote");
    fuzz_check(clean == closed, "a clean end exactly when the peer closed");
  } else {
    fuzz_check(got.size() <= written.size() && written.compare(0, got.size(), got) == 0,
               "an altered stream yields a prefix of the plaintext");
  }
  return 0;
}

}  // namespace dog::fuzz
