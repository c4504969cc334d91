// dog-ws-open: opens --count WebSockets of distinct users (u<first>..u<first+count-1>) to
// ws://127.0.0.1:PORT/ws?g=GROUP&u=USER from one source address, as fast as the server accepts
// them (at most --inflight handshakes outstanding), then holds them idle until stdin closes,
// SIGTERM, or --hold-s passes. Used by bench/objects, several processes at a time (one process
// cannot hold more than the 20,000-descriptor hard limit; one source address reaches ~28k ports).
//
// stdout, one JSON line when every handshake has ended (101 or failure), then another when it
// exits: {"opened", "failed", "done_unix_s", "elapsed_s"} / {"closed_by_server", ...}.
// Everything is bounded: --timeout-s for the opening phase, --hold-s for the idle phase.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

volatile std::sig_atomic_t g_stop = 0;

enum class St { kConnecting, kReading, kOpen, kDone };
struct Conn {
  int fd = -1;
  St st = St::kConnecting;
  std::string in;
  size_t sent = 0;
  std::string req;
};

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}
double unix_s() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"open idle WebSockets of distinct users"};
  int port = 0, count = 1000, first = 0, inflight = 256;
  std::string source = "127.0.0.1", group = "bench";
  double timeout_s = 60, hold_s = 600;
  cli.add_option("--port", port)->required();
  cli.add_option("--source", source, "127.0.0.x source address");
  cli.add_option("--count", count)->check(CLI::Range(1, 19'000));
  cli.add_option("--first", first, "index of the first user");
  cli.add_option("--inflight", inflight, "handshakes outstanding at once")->check(CLI::Range(1, 10'000));
  cli.add_option("--group", group);
  cli.add_option("--timeout-s", timeout_s, "bound on the opening phase");
  cli.add_option("--hold-s", hold_s, "bound on the idle phase");
  CLI11_PARSE(cli, argc, argv);

  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGPIPE, SIG_IGN);

  sockaddr_in dst{}, src{};
  dst.sin_family = src.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (inet_pton(AF_INET, source.c_str(), &src.sin_addr) != 1) {
    std::fprintf(stderr, "ws-open: bad --source %s\n", source.c_str());
    return 2;
  }
  int ep = epoll_create1(0);
  std::vector<Conn> conns(static_cast<size_t>(count));
  int started = 0, pending = 0, opened = 0, failed = 0, closed_by_server = 0;
  const double t0 = now_s();

  auto fail = [&](size_t i) {
    Conn& c = conns[i];
    if (c.st == St::kOpen) closed_by_server++;
    else if (c.st != St::kDone) failed++, pending--;
    if (c.fd >= 0) close(c.fd);  // close() also removes it from the epoll set
    c.fd = -1;
    c.st = St::kDone;
  };
  auto start = [&](size_t i) {
    Conn& c = conns[i];
    c.req = "GET /ws?g=" + group + "&u=u" + std::to_string(first + static_cast<int>(i)) +
            " HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    pending++;
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0 || bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) return fail(i);
    int r = connect(c.fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
    if (r != 0 && errno != EINPROGRESS) return fail(i);
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  };

  std::vector<epoll_event> evs(1024);
  char buf[4096];
  bool reported = false;
  double done_unix = 0, elapsed = 0;
  // Opening phase, then the idle phase (events only tell us of closes by the server).
  while (!g_stop) {
    while (started < count && pending < inflight) start(static_cast<size_t>(started++));
    if (!reported && started == count && pending == 0) {
      done_unix = unix_s();
      elapsed = now_s() - t0;
      std::printf("{\"opened\": %d, \"failed\": %d, \"done_unix_s\": %.6f, \"elapsed_s\": %.6f}\n", opened, failed,
                  done_unix, elapsed);
      std::fflush(stdout);
      reported = true;
    }
    const double limit = reported ? hold_s + elapsed : timeout_s;
    if (now_s() - t0 > limit) break;
    if (reported) {  // stdin closed = the driver is done with us
      pollfd p{0, POLLIN, 0};
      if (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP)) && read(0, buf, sizeof buf) <= 0) break;
    }
    int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
    for (int k = 0; k < n; ++k) {
      size_t i = evs[k].data.u64;
      Conn& c = conns[i];
      if (c.st == St::kDone) continue;
      if (evs[k].events & (EPOLLERR | EPOLLHUP)) {
        fail(i);
        continue;
      }
      if (c.st == St::kConnecting && (evs[k].events & EPOLLOUT)) {
        ssize_t w = send(c.fd, c.req.data() + c.sent, c.req.size() - c.sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
          fail(i);
          continue;
        }
        if (w > 0) c.sent += static_cast<size_t>(w);
        if (c.sent == c.req.size()) {
          c.st = St::kReading;
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLRDHUP;
          ev.data.u64 = i;
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
      if (evs[k].events & (EPOLLIN | EPOLLRDHUP)) {
        ssize_t r = recv(c.fd, buf, sizeof buf, 0);
        if (r <= 0) {
          if (r < 0 && errno == EAGAIN) continue;
          fail(i);
          continue;
        }
        if (c.st == St::kReading) {
          c.in.append(buf, static_cast<size_t>(r));
          if (c.in.find("\r\n\r\n") != std::string::npos) {
            if (c.in.rfind("HTTP/1.1 101", 0) != 0) {
              fail(i);
              continue;
            }
            c.st = St::kOpen;
            c.in.clear();
            c.in.shrink_to_fit();
            c.req.clear();
            c.req.shrink_to_fit();
            opened++;
            pending--;
          } else if (c.in.size() > 8192) {
            fail(i);
          }
        }  // open: frames from the server (none expected) are read and dropped
      }
    }
  }
  int open_now = 0;
  for (auto& c : conns) open_now += c.st == St::kOpen;
  std::printf("{\"opened\": %d, \"failed\": %d, \"closed_by_server\": %d, \"open_at_exit\": %d}\n", opened, failed,
              closed_by_server, open_now);
  for (auto& c : conns)
    if (c.fd >= 0) close(c.fd);
  close(ep);
  return 0;
}
