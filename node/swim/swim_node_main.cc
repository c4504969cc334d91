// dog-swim-node: one membership member as a process, for real-process and namespace tests.
//
//   dog-swim-node --bind 127.0.0.1:7946 --name n1 --key HEX64 [--join 127.0.0.1:7947,...]
//                 [--preset lan|local] [--advertise IP:PORT] [--seed S]
//
// stdout: one JSON object per line, flushed at once:
//   {"event":"start", "self":..., "addr":..., "t":..., "config":{...}}  first line
//   {"event":"join|update|suspect|alive|dead|leave", "self":..., "member":..., "addr":...,
//    "incarnation":..., "session":..., "view_epoch":..., "local":bool, "t":...}
//   {"event":"self_state", "self":..., "state":"suspect|dead|left|alive", "incarnation":..., "t":...}
//   {"event":"health", "self":..., "score":S, "t":...}   whenever the Lifeguard health score
//                                                         changes (sampled every 100 ms)
//   {"event":"stopped", "self":..., "t":..., "stats":{...}}              on graceful exit
// "t" is CLOCK_MONOTONIC in seconds (the same clock as Python's time.monotonic()), so a test can
// compare it with the moment it killed a process. SIGTERM/SIGINT: graceful leave (bounded by
// leave_propagate + 2 s), then exit 0. A second signal exits at once.
#include <CLI/CLI.hpp>
#include <asio/ip/udp.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "node/loop.h"
#include "node/swim/addr.h"
#include "node/swim/swim_host.h"

namespace {

using dog::node::swim::SteadyClock;
using nlohmann::json;
namespace mb = dog::membership;

double now_s() {
  return static_cast<double>(SteadyClock::read().count()) / 1e6;
}

void emit_line(const json& j) {
  const std::string s = j.dump();
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

double ms(mb::Duration d) {
  return static_cast<double>(d.count()) / 1000.0;
}

json config_json(const mb::Config& c) {
  return json{{"probe_interval_ms", ms(c.probe_interval)},
              {"probe_timeout_ms", ms(c.probe_timeout)},
              {"indirect_timeout_ms", ms(c.indirect_timeout)},
              {"indirect_checks", c.indirect_checks},
              {"successor_probe_every", c.successor_probe_every},
              {"suspicion_mult", c.suspicion_mult},
              {"suspicion_max_mult", c.suspicion_max_mult},
              {"suspicion_confirmations", c.suspicion_confirmations},
              {"awareness_max_multiplier", c.awareness_max_multiplier},
              {"lifeguard", c.lifeguard},
              {"retransmit_mult", c.retransmit_mult},
              {"gossip_interval_ms", ms(c.gossip_interval)},
              {"gossip_nodes", c.gossip_nodes},
              {"push_pull_interval_ms", ms(c.push_pull_interval)},
              {"leave_propagate_ms", ms(c.leave_propagate)},
              {"max_datagram_bytes", c.max_datagram_bytes}};
}

class JsonSink final : public mb::EventSink {
 public:
  explicit JsonSink(std::string self) : self_(std::move(self)) {}
  void on_member_event(const mb::Event& e) override {
    emit_line(json{{"event", mb::to_string(e.kind)},
                   {"self", self_},
                   {"member", e.member->name},
                   {"addr", e.member->addr},
                   {"incarnation", e.member->incarnation},
                   {"session", e.member->session},
                   {"view_epoch", e.view_epoch},
                   {"local", e.local_origin},
                   {"t", now_s()}});
  }
  // What peers say about this node (suspect/dead/left), then our refutation (alive).
  void on_self_state(mb::MemberState st, uint64_t incarnation) override {
    emit_line(json{{"event", "self_state"},
                   {"self", self_},
                   {"state", mb::to_string(st)},
                   {"incarnation", incarnation},
                   {"t", now_s()}});
  }

 private:
  std::string self_;
};

// HOST:PORT -> IP:PORT (literal IPs pass through; names are resolved once, IPv4 first).
std::string resolve(asio::io_context& io, const std::string& hp) {
  if (dog::node::swim::parse_ip_port(hp)) return hp;
  const size_t colon = hp.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("bad --join address '" + hp + "'");
  asio::ip::udp::resolver r(io);
  auto results = r.resolve(asio::ip::udp::v4(), hp.substr(0, colon), hp.substr(colon + 1));
  if (results.empty()) throw std::invalid_argument("cannot resolve '" + hp + "'");
  const auto ep = results.begin()->endpoint();
  return dog::node::swim::format_ip_port(ep.address(), ep.port());
}

json stats_json(const dog::node::swim::SwimHost& h) {
  const auto& s = h.swim().stats();
  const auto& t = h.transport().stats();
  return json{{"datagrams_sent", s.datagrams_sent},
              {"datagram_bytes_sent", s.datagram_bytes_sent},
              {"streams_sent", s.streams_sent},
              {"stream_bytes_sent", s.stream_bytes_sent},
              {"dropped_auth", s.dropped_auth},
              {"dropped_malformed", s.dropped_malformed},
              {"dropped_replay", s.dropped_replay},
              {"dropped_oversized", s.dropped_oversized},
              {"probes", s.probes},
              {"suspicions_raised", s.suspicions_raised},
              {"deaths_declared", s.deaths_declared},
              {"refutations", s.refutations},
              {"udp_sent", t.udp_sent},
              {"udp_bytes_sent", t.udp_bytes_sent},
              {"udp_max_sent", t.udp_max_sent},
              {"udp_dropped_oversized", t.udp_dropped_oversized},
              {"udp_send_errors", t.udp_send_errors},
              {"tcp_frames_sent", t.tcp_frames_sent},
              {"tcp_bytes_sent", t.tcp_bytes_sent},
              {"tcp_frames_dropped", t.tcp_frames_dropped},
              {"tcp_bad_frames", t.tcp_bad_frames},
              {"tcp_rejected", t.tcp_rejected},
              {"tcp_frames_received", t.tcp_frames_received}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dog-swim-node: one SWIM+Lifeguard member on real UDP/TCP sockets"};
  std::string bind, name, key_hex, preset = "lan", advertise, join_list;
  uint64_t seed = 0;
  app.add_option("--bind", bind, "IP:PORT for UDP and TCP")->required();
  app.add_option("--name", name, "unique member name")->required();
  app.add_option("--key", key_hex, "cluster key, 64 hex characters")->required();
  app.add_option("--join", join_list, "seed addresses HOST:PORT[,HOST:PORT...]");
  app.add_option("--preset", preset, "lan or local")->check(CLI::IsMember({"lan", "local"}));
  app.add_option("--advertise", advertise, "IP:PORT peers should use (default: --bind)");
  app.add_option("--seed", seed, "protocol RNG seed (default: random)");
  CLI11_PARSE(app, argc, argv);

  auto key = dog::node::swim::parse_key_hex(key_hex);
  if (!key) {
    std::cerr << "dog-swim-node: --key must be 64 hex characters\n";
    return 2;
  }

  try {
    dog::node::Loop loop;
    dog::node::swim::SwimIo io(loop.io());
    dog::node::swim::SwimHostOptions opts;
    opts.config = preset == "local" ? mb::Config::local() : mb::Config::lan();
    opts.name = name;
    opts.bind_addr = bind;
    opts.advertise_addr = advertise;
    opts.key = *key;
    opts.seed = seed;
    JsonSink sink(name);
    dog::node::swim::SwimHost host(io, opts, &sink);

    std::vector<std::string> seeds;
    std::stringstream ss(join_list);
    for (std::string item; std::getline(ss, item, ',');)
      if (!item.empty()) seeds.push_back(resolve(loop.io(), item));

    emit_line(json{{"event", "start"},
                   {"self", name},
                   {"addr", host.addr()},
                   {"preset", preset},
                   {"pid", static_cast<long>(getpid())},
                   {"t", now_s()},
                   {"config", config_json(host.swim().config())}});
    host.start();
    if (!seeds.empty()) host.join(seeds);

    // Graceful stop: first signal -> leave and wait (bounded) for the `left` gossip to go out.
    asio::signal_set signals(loop.io(), SIGTERM, SIGINT);
    asio::steady_timer poll(loop.io());
    int signals_seen = 0;
    mb::TimePoint leave_deadline{};
    std::function<void()> poll_leave = [&] {
      if (host.leave_done() || SteadyClock::read() >= leave_deadline) {
        loop.stop();
        return;
      }
      poll.expires_after(std::chrono::milliseconds(50));
      poll.async_wait([&](std::error_code ec) {
        if (!ec) poll_leave();
      });
    };
    std::function<void()> wait_signal = [&] {
      signals.async_wait([&](std::error_code ec, int) {
        if (ec) return;
        if (++signals_seen > 1) {
          loop.stop();
          return;
        }
        host.leave();
        leave_deadline =
            SteadyClock::read() + host.swim().config().leave_propagate + std::chrono::seconds(2);
        poll_leave();
        wait_signal();
      });
    };
    wait_signal();
    // Health score changes, for tests that derive time bounds from the protocol's own state.
    asio::steady_timer health_timer(loop.io());
    int last_health = 0;
    std::function<void()> sample_health = [&] {
      const int h = host.swim().health_score();
      if (h != last_health) {
        last_health = h;
        emit_line(json{{"event", "health"}, {"self", name}, {"score", h}, {"t", now_s()}});
      }
      health_timer.expires_after(std::chrono::milliseconds(100));
      health_timer.async_wait([&](std::error_code ec) {
        if (!ec) sample_health();
      });
    };
    sample_health();
    loop.run();
    emit_line(
        json{{"event", "stopped"}, {"self", name}, {"t", now_s()}, {"stats", stats_json(host)}});
    signals.cancel();
    poll.cancel();
  } catch (const std::exception& e) {
    std::cerr << "dog-swim-node: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
