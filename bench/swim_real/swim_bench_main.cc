// dog-swim-bench: N members of the production membership stack (SwimHost: Swim core + Asio UDP/TCP
// transport, encryption on) in ONE process on ONE node::Loop, each on its own 127.0.0.1 port.
//
//   dog-swim-bench --nodes N [--join-rate R] [--crashes K] [--loss P] [--seconds S]
//                  [--steady-seconds S2] [--settle S3] [--seed X] [--preset lan|local]
//
// Phases, in order (contract in issue 8 and docs/membership-transport.md):
//   join    every member joins through member 0 at the same moment (or R per second):
//           join_all_full_s (until every member sees the other N-1 alive), join_false_suspects
//   steady  after a settle period: bw_total_Bps (bytes sent per member per second, UDP payload +
//           TCP frames incl. the 4-byte prefix, all sealed; no IP/UDP/TCP headers),
//           max_udp_datagram_bytes, cpu_pct_one_core (whole process, /proc/self/stat)
//   crash   K times: a member goes silent (drops every packet in and out), then stops:
//           crash_first_suspect_median_s, crash_dead_100pct_median_s, crash_dead_100pct_max_s
//   loss    with --loss: S seconds with that random loss on every member's datagram sends:
//           loss_member_periods, loss_false_suspects, loss_false_deaths
// Progress goes to stderr; the last stdout line is one JSON object.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "membership/rng.h"
#include "node/loop.h"
#include "node/swim/swim_host.h"

namespace {

namespace mb = dog::membership;
using dog::node::swim::SteadyClock;
using dog::node::swim::SwimHost;
using dog::node::swim::SwimHostOptions;
using dog::node::swim::SwimIo;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Args {
  size_t nodes = 50;
  double join_rate = 0;  // 0: all at once
  size_t crashes = 0;
  double loss = 0;
  double seconds = 180;        // loss phase length
  double steady_seconds = 60;  // steady measurement window
  double settle = 20;          // after convergence, before measuring (join push/pull back-off)
  double join_timeout = 120;
  double crash_timeout = 60;
  uint64_t seed = 1;
  std::string preset = "lan";
  double timer_quantum_ms = 10;
};

enum : uint8_t { kUnknown = 0, kAlive = 1, kSuspect = 2, kDead = 3, kLeft = 4 };

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

json num_or_null(double v) {
  return std::isnan(v) ? json(nullptr) : json(v);
}

double cpu_seconds() {
  std::ifstream f("/proc/self/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t rp = s.rfind(')');
  if (rp == std::string::npos) return 0;
  // Fields after "pid (comm)": state is field 3; utime is 14, stime 15.
  std::vector<std::string> fields;
  size_t pos = rp + 2;
  while (pos < s.size() && fields.size() < 13) {
    size_t sp = s.find(' ', pos);
    if (sp == std::string::npos) sp = s.size();
    fields.push_back(s.substr(pos, sp - pos));
    pos = sp + 1;
  }
  if (fields.size() < 13) return 0;
  const double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / tck;
}

void progress(const char* fmt, auto... a) {
  std::fprintf(stderr, fmt, a...);
  std::fputc('\n', stderr);
}

class Bench {
 public:
  Bench(Args a)
      : a_(std::move(a)),
        io_(loop_.io(),
            std::chrono::microseconds(static_cast<int64_t>(a_.timer_quantum_ms * 1000))),
        rng_(a_.seed) {}

  int run() {
    raise_fd_limit();
    asio::co_spawn(loop_.io(), main(), [this](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          progress("dog-swim-bench: %s", ex.what());
          out_["error"] = ex.what();
        }
      }
      loop_.stop();
    });
    loop_.run();
    hosts_.clear();  // before the loop
    sinks_.clear();
    std::cout << out_.dump() << std::endl;
    return out_.contains("error") ? 1 : 0;
  }

 private:
  // Per-member event sink: keeps the observer's view of every other member.
  struct Sink : mb::EventSink {
    Bench* b;
    uint32_t self;
    void on_member_event(const mb::Event& e) override { b->on_event(self, e); }
  };

  void raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    // Each member: 1 UDP socket + 1 listener, plus transient TCP connections (both ends
    // in-process).
    if (rl.rlim_cur < 6 * a_.nodes + 64)
      progress("warning: RLIMIT_NOFILE %llu may be too small for %zu members",
               (unsigned long long)rl.rlim_cur, a_.nodes);
  }

  static std::optional<uint32_t> index_of(const std::string& name) {
    if (name.size() < 2 || name[0] != 'm') return std::nullopt;
    uint32_t v = 0;
    auto r = std::from_chars(name.data() + 1, name.data() + name.size(), v);
    if (r.ec != std::errc() || r.ptr != name.data() + name.size()) return std::nullopt;
    return v;
  }

  void on_event(uint32_t obs, const mb::Event& e) {
    auto subj = index_of(e.member->name);
    if (!subj || *subj >= a_.nodes || *subj == obs) return;
    uint8_t& st = view_[obs][*subj];
    if (st == kAlive) --alive_[obs];
    switch (e.kind) {
      case mb::EventKind::kJoin:
      case mb::EventKind::kAlive:
      case mb::EventKind::kUpdate:
        st = kAlive;
        break;
      case mb::EventKind::kSuspect:
        st = kSuspect;
        break;
      case mb::EventKind::kDead:
        st = kDead;
        break;
      case mb::EventKind::kLeave:
        st = kLeft;
        break;
    }
    if (st == kAlive) ++alive_[obs];
    const bool victim = crash_victim_ && *subj == *crash_victim_;
    if (e.kind == mb::EventKind::kSuspect) {
      if (victim) {
        if (!crash_first_suspect_) crash_first_suspect_ = Clock::now();
      } else {
        ++suspect_events_;
        if (e.local_origin) ++suspects_raised_;
      }
    } else if (e.kind == mb::EventKind::kDead) {
      if (victim) {
        ++crash_dead_seen_;
      } else {
        ++dead_events_;
        if (e.local_origin) ++deaths_raised_;
      }
    }
  }

  SwimHost& add_member(uint32_t i) {
    SwimHostOptions o;
    o.config = a_.preset == "local" ? mb::Config::local() : mb::Config::lan();
    o.name = "m" + std::to_string(i);
    o.bind_addr = "127.0.0.1:0";
    o.key = key_;
    o.seed = rng_.next() | 1;
    auto s = std::make_unique<Sink>();
    s->b = this;
    s->self = i;
    hosts_[i] = std::make_unique<SwimHost>(io_, o, s.get());
    sinks_[i] = std::move(s);
    return *hosts_[i];
  }

  asio::awaitable<void> sleep(double s) {
    asio::steady_timer t(loop_.io());
    t.expires_after(std::chrono::microseconds(static_cast<int64_t>(s * 1e6)));
    co_await t.async_wait(asio::use_awaitable);
  }

  static double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }

  size_t live_count() const {
    size_t n = 0;
    for (auto& h : hosts_) n += h != nullptr;
    return n;
  }

  struct Traffic {
    uint64_t udp = 0, tcp = 0;
  };
  Traffic traffic() const {
    Traffic t;
    for (auto& h : hosts_) {
      if (!h) continue;
      t.udp += h->transport().stats().udp_bytes_sent;
      t.tcp += h->transport().stats().tcp_bytes_sent;
    }
    return t;
  }
  uint64_t max_udp() const {
    uint64_t m = 0;
    for (auto& h : hosts_)
      if (h) m = std::max<uint64_t>(m, h->transport().stats().udp_max_sent);
    return m;
  }

  asio::awaitable<void> main() {
    const size_t n = a_.nodes;
    for (auto& b : key_) b = static_cast<uint8_t>(rng_.next());
    hosts_.resize(n);
    sinks_.resize(n);
    view_.assign(n, std::vector<uint8_t>(n, kUnknown));
    alive_.assign(n, 0);
    out_ = json{{"bench", "dog-swim-bench"},
                {"nodes", n},
                {"join_rate", a_.join_rate},
                {"seed", a_.seed},
                {"preset", a_.preset},
                {"encryption", true},
                {"timer_quantum_ms", a_.timer_quantum_ms},
                {"transport", "asio udp+tcp 127.0.0.1"}};

    // ---- join ----
    progress("join: %zu members through m0 (%s)", n,
             a_.join_rate > 0 ? "rate-limited" : "all at once");
    SwimHost& seed = add_member(0);
    seed.start();
    const std::vector<std::string> seeds{seed.addr()};
    if (a_.join_rate <= 0) {
      for (uint32_t i = 1; i < n; ++i) add_member(i).start();
    }
    const auto t_join = Clock::now();
    Clock::time_point t_last_join = t_join;
    if (a_.join_rate <= 0) {
      for (uint32_t i = 1; i < n; ++i) hosts_[i]->join(seeds);
    } else {
      for (uint32_t i = 1; i < n; ++i) {
        const double due = (i - 1) / a_.join_rate;
        if (since(t_join) < due) co_await sleep(due - since(t_join));
        SwimHost& h = add_member(i);
        h.start();
        h.join(seeds);
        t_last_join = Clock::now();
      }
    }
    auto full = [&] {
      for (uint32_t i = 0; i < n; ++i)
        if (alive_[i] != n - 1) return false;
      return true;
    };
    double last_report = 0;
    while (!full() && since(t_join) < a_.join_timeout) {
      co_await sleep(0.01);
      if (since(t_join) - last_report >= 0.5) {
        last_report = since(t_join);
        size_t done = 0;
        std::vector<size_t> seen;
        for (uint32_t i = 0; i < n; ++i)
          if (hosts_[i]) {
            done += alive_[i] == n - 1;
            seen.push_back(alive_[i]);
          }
        std::sort(seen.begin(), seen.end());
        progress("  t=%.1fs: %zu/%zu members see all; others seen alive: min %zu, median %zu",
                 last_report, done, n, seen.empty() ? 0 : seen.front(),
                 seen.empty() ? 0 : seen[seen.size() / 2]);
      }
    }
    const bool joined = full();
    out_["join_converged"] = joined;
    out_["join_all_full_s"] = joined ? json(since(t_join)) : json(nullptr);
    if (a_.join_rate > 0)
      out_["join_after_last_s"] = joined ? json(since(t_last_join)) : json(nullptr);
    out_["join_false_suspects"] = suspects_raised_;
    out_["join_suspect_events"] = suspect_events_;
    out_["join_false_deaths"] = dead_events_;
    progress("join: %s after %.2f s, %llu false suspicions raised (%llu suspect events)",
             joined ? "converged" : "NOT converged", since(t_join),
             (unsigned long long)suspects_raised_, (unsigned long long)suspect_events_);
    if (!joined) co_return;

    // ---- steady ----
    progress("steady: settle %.0f s, then measure %.0f s", a_.settle, a_.steady_seconds);
    co_await sleep(a_.settle);
    for (auto& h : hosts_) h->transport().reset_udp_max_sent();
    const uint64_t sus0 = suspects_raised_, dead0 = dead_events_;
    const Traffic tr0 = traffic();
    const double cpu0 = cpu_seconds();
    const auto ts = Clock::now();
    co_await sleep(a_.steady_seconds);
    const double wall = since(ts);
    const double cpu = cpu_seconds() - cpu0;
    const Traffic tr1 = traffic();
    const double per = static_cast<double>(n) * wall;
    out_["steady_seconds"] = wall;
    out_["bw_udp_Bps"] = static_cast<double>(tr1.udp - tr0.udp) / per;
    out_["bw_tcp_Bps"] = static_cast<double>(tr1.tcp - tr0.tcp) / per;
    out_["bw_total_Bps"] = static_cast<double>((tr1.udp - tr0.udp) + (tr1.tcp - tr0.tcp)) / per;
    out_["max_udp_datagram_bytes"] = max_udp();
    out_["cpu_pct_one_core"] = 100.0 * cpu / wall;
    out_["steady_false_suspects"] = suspects_raised_ - sus0;
    out_["steady_false_deaths"] = dead_events_ - dead0;
    progress(
        "steady: %.1f B/s per member (udp %.1f + tcp %.1f), max datagram %llu B, cpu %.2f%% of one "
        "core",
        out_["bw_total_Bps"].get<double>(), out_["bw_udp_Bps"].get<double>(),
        out_["bw_tcp_Bps"].get<double>(), (unsigned long long)max_udp(),
        out_["cpu_pct_one_core"].get<double>());

    // ---- crash x K ----
    std::vector<double> first_suspect, dead_all;
    const uint64_t crash_dead0 = dead_events_;
    for (size_t k = 0; k < a_.crashes; ++k) {
      std::vector<uint32_t> candidates;
      for (uint32_t i = 1; i < n; ++i)
        if (hosts_[i]) candidates.push_back(i);
      if (candidates.size() < 2) break;
      const uint32_t v = candidates[rng_.uniform(candidates.size())];
      crash_victim_ = v;
      crash_first_suspect_.reset();
      crash_dead_seen_ = 0;
      const size_t survivors = live_count() - 1;
      auto dead_everywhere = [&] {
        for (uint32_t i = 0; i < n; ++i)
          if (hosts_[i] && i != v && view_[i][v] != kDead) return false;
        return true;
      };
      const auto t0 = Clock::now();
      hosts_[v]->transport().set_silent(true);
      while (!dead_everywhere() && since(t0) < a_.crash_timeout) co_await sleep(0.005);
      const bool ok = dead_everywhere();
      const double t_dead = since(t0);
      const double t_sus = crash_first_suspect_
                               ? std::chrono::duration<double>(*crash_first_suspect_ - t0).count()
                               : NAN;
      first_suspect.push_back(t_sus);
      dead_all.push_back(ok ? t_dead : NAN);
      progress(
          "crash %zu/%zu: m%u silent; first suspicion %.2f s, dead at %s of %zu survivors after "
          "%.2f s",
          k + 1, a_.crashes, v, t_sus, ok ? "all" : "NOT all", survivors, t_dead);
      hosts_[v].reset();  // then it stops
      crash_victim_.reset();
      co_await sleep(2);
    }
    if (a_.crashes > 0) {
      std::vector<double> ds;
      for (double d : dead_all)
        if (!std::isnan(d)) ds.push_back(d);
      out_["crashes"] = first_suspect.size();
      out_["crash_first_suspect_s"] = first_suspect;
      out_["crash_dead_100pct_s"] = dead_all;
      out_["crash_undetected"] = dead_all.size() - ds.size();
      out_["crash_first_suspect_median_s"] = num_or_null(median(first_suspect));
      out_["crash_dead_100pct_median_s"] = num_or_null(median(ds));
      out_["crash_dead_100pct_max_s"] =
          ds.empty() ? json(nullptr) : json(*std::max_element(ds.begin(), ds.end()));
      out_["crash_false_deaths"] = dead_events_ - crash_dead0;
    }

    // ---- loss ----
    if (a_.loss > 0) {
      progress("loss: %.1f%% on every member's datagram sends for %.0f s", a_.loss * 100,
               a_.seconds);
      for (auto& h : hosts_)
        if (h) h->transport().set_send_loss(a_.loss, rng_.next());
      const uint64_t s0 = suspects_raised_, se0 = suspect_events_, d0 = dead_events_,
                     dr0 = deaths_raised_;
      const size_t live = live_count();
      const auto tl = Clock::now();
      while (since(tl) < a_.seconds) {
        co_await sleep(std::min(10.0, a_.seconds - since(tl)));
        progress("  t=%.0fs: %llu suspicions raised, %llu deaths", since(tl),
                 (unsigned long long)(suspects_raised_ - s0),
                 (unsigned long long)(dead_events_ - d0));
      }
      const double lw = since(tl);
      const double period =
          std::chrono::duration<double>(hosts_[0]->swim().config().probe_interval).count();
      out_["loss"] = a_.loss;
      out_["loss_seconds"] = lw;
      out_["loss_member_periods"] = static_cast<double>(live) * lw / period;
      out_["loss_false_suspects"] = suspects_raised_ - s0;
      out_["loss_suspect_events"] = suspect_events_ - se0;
      out_["loss_false_deaths"] = dead_events_ - d0;
      out_["loss_deaths_raised"] = deaths_raised_ - dr0;
      for (auto& h : hosts_)
        if (h) h->transport().set_send_loss(0, 1);
    }

    // Totals over the whole run, for the record.
    uint64_t dropped = 0, refutations = 0, udp_err = 0, tcp_drop = 0;
    for (auto& h : hosts_) {
      if (!h) continue;
      dropped += h->swim().stats().dropped_total();
      refutations += h->swim().stats().refutations;
      udp_err += h->transport().stats().udp_send_errors;
      tcp_drop += h->transport().stats().tcp_frames_dropped;
    }
    out_["core_dropped_total"] = dropped;
    out_["refutations"] = refutations;
    out_["udp_send_errors"] = udp_err;
    out_["tcp_frames_dropped"] = tcp_drop;
  }

  Args a_;
  dog::node::Loop loop_;
  SwimIo io_;
  mb::Rng rng_;
  mb::Keyring::Key key_{};
  std::vector<std::unique_ptr<Sink>> sinks_;
  std::vector<std::unique_ptr<SwimHost>> hosts_;
  std::vector<std::vector<uint8_t>> view_;
  std::vector<size_t> alive_;
  uint64_t suspect_events_ = 0, suspects_raised_ = 0, dead_events_ = 0, deaths_raised_ = 0;
  std::optional<uint32_t> crash_victim_;
  std::optional<Clock::time_point> crash_first_suspect_;
  size_t crash_dead_seen_ = 0;
  json out_;
};

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"dog-swim-bench: the production membership stack on real loopback sockets"};
  app.add_option("--nodes", a.nodes, "members N (one UDP+TCP port each)")
      ->check(CLI::Range(2, 5000));
  app.add_option("--join-rate", a.join_rate, "joins per second (default: all at once)");
  app.add_option("--crashes", a.crashes, "crash trials K");
  app.add_option("--loss", a.loss, "random loss on every member's datagram sends, 0..0.5")
      ->check(CLI::Range(0.0, 0.5));
  app.add_option("--seconds", a.seconds, "length of the loss phase");
  app.add_option("--steady-seconds", a.steady_seconds, "steady-state measurement window");
  app.add_option("--settle", a.settle, "seconds between convergence and the steady window");
  app.add_option("--join-timeout", a.join_timeout, "give up on convergence after this");
  app.add_option("--crash-timeout", a.crash_timeout, "give up on one crash's detection after this");
  app.add_option("--seed", a.seed, "seed for keys, member RNGs and victims");
  app.add_option("--timer-quantum-ms", a.timer_quantum_ms,
                 "SwimIo timer quantum (wake-ups are rounded up to it)");
  app.add_option("--preset", a.preset, "lan or local")->check(CLI::IsMember({"lan", "local"}));
  CLI11_PARSE(app, argc, argv);
  Bench b(a);
  return b.run();
}
