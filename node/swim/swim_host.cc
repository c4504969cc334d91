#include "node/swim/swim_host.h"

#include <sodium.h>

#include <chrono>
#include <stdexcept>

namespace dog::node::swim {

namespace {
TransportLimits limits_for(const SwimHostOptions& o) {
  TransportLimits l = o.limits;
  l.max_datagram_bytes = o.config.max_datagram_bytes;
  l.max_frame_bytes = o.config.max_stream_bytes;
  return l;
}

membership::Config config_for(const SwimHostOptions& o) {
  membership::Config c = o.config;
  // A fixed session only when the caller chose one: the Config default (1) would make every
  // restart look like the same run, and peers would never see the restart as a new member.
  if (!o.session_from_realtime && c.session_id <= 1)
    throw std::invalid_argument("membership config: session_id must be set (> 1) when "
                                "session_from_realtime is off");
  if (o.session_from_realtime)
    c.session_id = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  if (auto err = c.validate()) throw std::invalid_argument("membership config: " + *err);
  return c;
}

uint64_t seed_for(const SwimHostOptions& o) {
  if (o.seed != 0) return o.seed;
  uint64_t s = 0;
  if (sodium_init() < 0) throw std::runtime_error("libsodium init failed");
  randombytes_buf(&s, sizeof s);
  return s | 1;
}
}  // namespace

SwimHost::SwimHost(SwimIo& io, SwimHostOptions opts, membership::EventSink* sink)
    : io_(io),
      keyring_(opts.key),
      transport_(io, opts.bind_addr, limits_for(opts)),
      addr_(opts.advertise_addr.empty() ? transport_.local_addr() : opts.advertise_addr),
      timer_(io.timers(), [this] { swim_->on_timer(); }) {
  for (const auto& k : opts.extra_keys) keyring_.install(k);
  if (opts.name.empty() || opts.name.size() > opts.config.max_name_bytes)
    throw std::invalid_argument("member name must be 1.." +
                                std::to_string(opts.config.max_name_bytes) + " bytes");
  membership::Identity id{opts.name, addr_, opts.meta};
  swim_ = std::make_unique<membership::Swim>(config_for(opts), std::move(id), keyring_, io.clock(),
                                             timer_, transport_, seed_for(opts), sink);
  transport_.set_receiver(this);
}

SwimHost::~SwimHost() {
  // Stop deliveries first, then the core; the timer client detaches in its own destructor.
  transport_.set_receiver(nullptr);
  transport_.close();
}

void SwimHost::start() {
  transport_.start();
  swim_->start();
}

void SwimHost::join(std::span<const std::string> seeds) {
  swim_->join(seeds);
}

void SwimHost::on_datagram(std::string_view from, std::span<const uint8_t> bytes) {
  swim_->on_datagram(from, bytes);
}

void SwimHost::on_stream(std::string_view from, std::span<const uint8_t> bytes) {
  swim_->on_stream(from, bytes);
}

std::optional<membership::Keyring::Key> parse_key_hex(std::string_view hex) {
  membership::Keyring::Key k{};
  if (hex.size() != 2 * k.size()) return std::nullopt;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < k.size(); ++i) {
    const int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    k[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return k;
}

}  // namespace dog::node::swim
