// SwimHost: one membership::Swim instance wired to real sockets and the loop's clock.
//
//   SwimIo (per loop: clock, TimerQueue, receive buffer)
//     └── SwimHost (per member)
//           ├── AsioTransport  (UDP + TCP on one port)      ── sealed bytes ──► Swim::on_*
//           ├── QueuedTimer    (one client of the TimerQueue) ─ wake-ups ────► Swim::on_timer
//           ├── Keyring        (the cluster key)
//           └── Swim           (sans-IO core, membership/swim.h)
//
// Construction binds the sockets (throws if it cannot); start() begins receiving and probing.
// Destroying a host is a crash from the network's point of view (sockets close, no leave);
// call leave() and wait for leave_done() first for a graceful exit.
//
// Thread-safety: none; the host and its SwimIo belong to one loop. Event callbacks (EventSink)
// run synchronously inside socket/timer handlers: they must not destroy this host (post instead).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "membership/config.h"
#include "membership/events.h"
#include "membership/keyring.h"
#include "membership/swim.h"
#include "node/swim/swim_io.h"
#include "node/swim/transport.h"

namespace dog::node::swim {

struct SwimHostOptions {
  membership::Config config = membership::Config::lan();
  std::string name;
  std::string bind_addr = "127.0.0.1:0";  // IP:PORT; port 0 picks a free port for UDP and TCP
  std::string advertise_addr;             // what peers use; default: the bound address
  membership::Keyring::Key key{};         // cluster key (primary)
  std::vector<membership::Keyring::Key> extra_keys;  // still accepted (rotation)
  membership::Meta meta;
  uint64_t seed = 0;  // protocol RNG seed; 0 draws one from the OS CSPRNG
  // config.session_id must strictly increase across restarts of one name. If set, the host uses
  // CLOCK_REALTIME in nanoseconds (what a restarted process naturally satisfies). If cleared,
  // config.session_id must be set by the caller: the Config default (1) is refused.
  bool session_from_realtime = true;
  TransportLimits limits;  // max_datagram_bytes/max_frame_bytes are taken from `config`
};

class SwimHost final : private AsioTransport::Receiver {
 public:
  SwimHost(SwimIo& io, SwimHostOptions opts, membership::EventSink* sink);
  ~SwimHost() override;
  SwimHost(const SwimHost&) = delete;
  SwimHost& operator=(const SwimHost&) = delete;

  void start();
  // Seeds are IP:PORT strings (resolve host names before calling).
  void join(std::span<const std::string> seeds);
  void leave() { swim_->leave(); }
  bool leave_done() const { return swim_->leave_done(); }

  const std::string& addr() const { return addr_; }
  const std::string& name() const { return swim_->name(); }
  membership::Swim& swim() { return *swim_; }
  const membership::Swim& swim() const { return *swim_; }
  AsioTransport& transport() { return transport_; }
  const AsioTransport& transport() const { return transport_; }
  membership::Keyring& keyring() { return keyring_; }

 private:
  void on_datagram(std::string_view from, std::span<const uint8_t> bytes) override;
  void on_stream(std::string_view from, std::span<const uint8_t> bytes) override;

  SwimIo& io_;
  membership::Keyring keyring_;
  AsioTransport transport_;
  std::string addr_;
  QueuedTimer timer_;
  std::unique_ptr<membership::Swim> swim_;
};

// Parses 64 hex characters into a key. Returns nullopt on anything else.
std::optional<membership::Keyring::Key> parse_key_hex(std::string_view hex);

}  // namespace dog::node::swim
