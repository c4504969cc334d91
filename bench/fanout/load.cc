// dog-fanout-load: the client side of bench/fanout (driven by bench/fanout/run).
//
//   --ports P1,P2,..  --pids PID,..  --sockets N  [--bytes B] [--lat-msgs 50] [--lat-rate 5]
//   [--sat-s 10] [--window 256]  broadcast benchmark against dog-fanout nodes on 127.0.0.1
//   --idle N --ports P                      open N idle sockets, print "ready", hold until stdin closes
//   --floor N [--bytes B]                   the kernel floor: a forked writer sends the same frames
//                                           to N loopback sockets, one write() per message, then 16 per writev
//
// Receivers connect round-robin over the ports (room "bench"); one more socket, on the first port,
// publishes. Every socket is read through one epoll loop in this one thread. Phases: connect;
// settle (probes until every receiver has one); latency (lat-msgs broadcasts at lat-rate/s);
// saturation (the publisher writes as fast as its socket takes, sat-s seconds) and a drain of up
// to 10 s. Server CPU is utime+stime of --pids from /proc. The last stdout line is one JSON object.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(2);
}

std::vector<long> split(const std::string& s) {
  std::vector<long> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(std::stol(s.substr(i, j - i)));
    i = j + 1;
  }
  return out;
}

void raise_nofile() {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
}

// utime + stime of `pid`, in seconds.
double proc_cpu_s(long pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char buf[4096];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');
  if (!p) return 0;
  unsigned long long ut = 0, st = 0;
  // fields after ") ": state(3) ... utime is field 14, stime 15
  std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
  return double(ut + st) / double(sysconf(_SC_CLK_TCK));
}

double self_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 && errno != EINPROGRESS) die("connect");
  return fd;
}

// A masked client text frame.
std::string client_frame(const std::string& payload) {
  std::string f;
  f.push_back(char(0x81));
  if (payload.size() < 126) {
    f.push_back(char(0x80 | payload.size()));
  } else {
    f.push_back(char(0x80 | 126));
    f.push_back(char(payload.size() >> 8));
    f.push_back(char(payload.size() & 0xff));
  }
  f.append("\0\0\0\0", 4);  // mask key 0: the payload goes as is
  f += payload;
  return f;
}

struct Conn {
  int fd = -1;
  bool upgraded = false, closed = false, closed_1013 = false;
  bool is_publisher = false;
  std::string in;  // unparsed bytes (only while a frame or the 101 is incomplete)
  long got = 0;    // benchmark messages received
  bool probed = false;
};

struct Msg {
  double sent = 0, first = 0, last = 0;
  long count = 0;
};

struct Bench {
  std::vector<Conn> conns;  // [0] is the publisher
  int ep = -1;
  std::vector<Msg> msgs;    // by sequence number
  long settle_probes = 0;
  long received = 0, receivers_probed = 0;
  long pub_echo = 0;  // messages (by sequence) the publisher got back from its own broadcasts
  size_t bytes = 64;

  void add(int port, bool publisher) {
    Conn c;
    c.fd = connect_to(port);
    c.is_publisher = publisher;
    std::string req = "GET /ws?room=bench HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    c.in = req;  // pending request, sent once connected
    epoll_event e{};
    e.events = EPOLLOUT | EPOLLIN;
    e.data.u64 = conns.size();
    conns.push_back(std::move(c));
    if (epoll_ctl(ep, EPOLL_CTL_ADD, conns.back().fd, &e) < 0) die("epoll_ctl");
  }

  // Handles one server frame's payload on connection i.
  void on_text(size_t i, const char* p, size_t n) {
    Conn& c = conns[i];
    if (n >= 2 && p[0] == 'P') {  // settle probe
      if (!c.probed && !c.is_publisher) {
        c.probed = true;
        receivers_probed++;
      }
      return;
    }
    if (n < 2 || p[0] != 'M') return;
    long seq = std::strtol(p + 1, nullptr, 10);
    if (c.is_publisher) {  // its own broadcast came back: the window moves
      pub_echo = std::max(pub_echo, seq + 1);
      return;
    }
    if (seq < 0 || size_t(seq) >= msgs.size()) return;
    double t = now_s();
    Msg& m = msgs[size_t(seq)];
    if (m.count == 0) m.first = t;
    m.last = t;
    m.count++;
    c.got++;
    received++;
  }

  void on_readable(size_t i) {
    Conn& c = conns[i];
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(c.fd, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close_conn(i);
        return;
      }
      if (n < 0) return;
      c.in.append(buf, size_t(n));
      parse(i);
      if (c.closed) return;
      if (size_t(n) < sizeof buf) return;
    }
  }

  void parse(size_t i) {
    Conn& c = conns[i];
    size_t pos = 0;
    if (!c.upgraded) {
      size_t end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) return;
      if (c.in.compare(0, 12, "HTTP/1.1 101") != 0) {
        std::fprintf(stderr, "fanout-load: upgrade refused: %.40s\n", c.in.c_str());
        close_conn(i);
        return;
      }
      c.upgraded = true;
      pos = end + 4;
    }
    const std::string& s = c.in;
    while (s.size() - pos >= 2) {
      uint8_t b0 = uint8_t(s[pos]), b1 = uint8_t(s[pos + 1]);
      size_t len = b1 & 0x7f, h = 2;
      if (len == 126) {
        if (s.size() - pos < 4) break;
        len = (size_t(uint8_t(s[pos + 2])) << 8) | uint8_t(s[pos + 3]);
        h = 4;
      } else if (len == 127) {
        if (s.size() - pos < 10) break;
        len = 0;
        for (int k = 0; k < 8; ++k) len = (len << 8) | uint8_t(s[pos + 2 + k]);
        h = 10;
      }
      if (s.size() - pos < h + len) break;
      uint8_t op = b0 & 0x0f;
      if (op == 0x1) on_text(i, s.data() + pos + h, len);
      if (op == 0x8) {
        uint16_t code = len >= 2 ? uint16_t((uint8_t(s[pos + h]) << 8) | uint8_t(s[pos + h + 1])) : 0;
        if (code == 1013) c.closed_1013 = true;
        close_conn(i);
        return;
      }
      pos += h + len;
    }
    c.in.erase(0, pos);
    if (c.in.empty()) std::string().swap(c.in);
  }

  void close_conn(size_t i) {
    Conn& c = conns[i];
    if (c.closed) return;
    c.closed = true;
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
  }

  // Runs the loop for up to `seconds` or until `done()`; `out` is the publisher's pending bytes.
  std::string out;
  template <typename Done>
  void run(double seconds, Done done) {
    double end = now_s() + seconds;
    epoll_event ev[512];
    while (now_s() < end && !done()) {
      flush_publisher();
      int n = epoll_wait(ep, ev, 512, 5);
      for (int k = 0; k < n; ++k) {
        size_t i = ev[k].data.u64;
        Conn& c = conns[i];
        if (c.closed) continue;
        if ((ev[k].events & EPOLLOUT) && !c.in.empty() && !c.upgraded && c.in.rfind("GET ", 0) == 0) {
          ssize_t w = ::write(c.fd, c.in.data(), c.in.size());
          if (w == ssize_t(c.in.size())) {
            c.in.clear();
            epoll_event e{};
            e.events = EPOLLIN | (c.is_publisher ? EPOLLOUT : 0);
            e.data.u64 = i;
            epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &e);
          }
          continue;
        }
        if (ev[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(i);
      }
    }
  }

  void flush_publisher() {
    Conn& p = conns[0];
    if (out.empty() || p.closed || !p.upgraded) return;
    ssize_t w = ::write(p.fd, out.data(), out.size());
    if (w > 0) out.erase(0, size_t(w));
  }

  void publish(const std::string& payload) { out += client_frame(payload); }

  std::string message(long seq) {
    std::string m = "M" + std::to_string(seq) + " ";
    m.resize(std::max(bytes, m.size()), 'x');
    return m;
  }
};

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5));
  return v[i];
}

int bench_main(const std::vector<long>& ports, const std::vector<long>& pids, long sockets, size_t bytes,
               long lat_msgs, double lat_rate, double sat_s, long window) {
  Bench b;
  b.bytes = bytes;
  b.ep = epoll_create1(0);
  auto cpu = [&] {
    double s = 0;
    for (long p : pids) s += proc_cpu_s(p);
    return s;
  };
  // Connect: the publisher first, then receivers, at most 256 upgrades in flight.
  double t0 = now_s();
  b.add(int(ports[0]), true);
  long next = 0;
  while (true) {
    long upgraded = 0, closed = 0;
    for (auto& c : b.conns) upgraded += c.upgraded, closed += c.closed;
    long pending = long(b.conns.size()) - upgraded - closed;
    while (next < sockets && pending < 256) {
      b.add(int(ports[size_t(next) % ports.size()]), false);
      ++next;
      ++pending;
    }
    if (next == sockets && pending == 0) break;
    if (now_s() - t0 > 300) break;
    b.run(0.05, [] { return false; });
  }
  long connected = 0;
  for (auto& c : b.conns) connected += (!c.is_publisher && c.upgraded && !c.closed);
  std::fprintf(stderr, "fanout-load: %ld of %ld receivers connected in %.1f s\n", connected, sockets, now_s() - t0);

  // Settle: probes until every connected receiver has one (joins complete after the 101).
  double ts = now_s();
  while (b.receivers_probed < connected && now_s() - ts < 60) {
    b.publish("P" + std::to_string(b.settle_probes++));
    b.run(0.2, [&] { return b.receivers_probed >= connected; });
  }
  std::fprintf(stderr, "fanout-load: settled (%ld probed) in %.1f s\n", b.receivers_probed, now_s() - ts);
  b.run(0.5, [] { return false; });  // the last probes arrive

  // Latency: lat_msgs broadcasts at lat_rate per second.
  auto receivers_open = [&] {
    long n = 0;
    for (auto& c : b.conns) n += (!c.is_publisher && c.upgraded && !c.closed);
    return n;
  };
  b.msgs.resize(size_t(lat_msgs));
  double cpu0 = cpu(), self0 = self_cpu_s(), tl = now_s();
  for (long i = 0; i < lat_msgs; ++i) {
    double due = tl + double(i) / lat_rate;
    b.run(std::max(0.0, due - now_s()), [] { return false; });
    b.msgs[size_t(i)].sent = now_s();
    b.publish(b.message(i));
    b.flush_publisher();
  }
  long want = lat_msgs * receivers_open();
  b.run(10, [&] { return b.received >= want; });
  double lat_wall = now_s() - tl;
  double cpu_lat = cpu() - cpu0, self_lat = self_cpu_s() - self0;
  long lat_received = b.received;
  std::vector<double> first, last;
  for (auto& m : b.msgs)
    if (m.count > 0) {
      first.push_back((m.first - m.sent) * 1e3);
      last.push_back((m.last - m.sent) * 1e3);
    }

  // Saturation: the publisher keeps `window` messages ahead of its own echo (it is in the room
  // too), so the server always has work queued but the kernel buffers hold no more than a drain
  // can deliver; then a drain.
  long base = lat_msgs;
  std::fprintf(stderr, "fanout-load: saturation starts\n");
  double cpu1 = cpu(), self1 = self_cpu_s(), t1 = now_s();
  long recv1 = b.received;
  long sent = 0;
  while (now_s() - t1 < sat_s) {
    while (base + sent - b.pub_echo < window) {
      b.msgs.emplace_back();
      b.msgs.back().sent = now_s();
      b.publish(b.message(base + sent));
      ++sent;
    }
    b.run(0.002, [] { return false; });
  }
  double sat_wall = now_s() - t1;
  double cpu_sat = cpu() - cpu1, self_sat = self_cpu_s() - self1;
  long sat_received = b.received - recv1;
  // What the publisher wrote reaches everyone: drain it, then wait for the deliveries.
  double td = now_s();
  long total_msgs = base + sent;
  while (!b.out.empty() && now_s() - td < 30) b.run(0.01, [] { return false; });
  // Messages fully handed to the kernel (every frame has the same size).
  const size_t frame_len = client_frame(b.message(base + sent - 1)).size();
  long written = sent - long((b.out.size() + frame_len - 1) / frame_len);
  long open = receivers_open();
  long expect_sat = written * open;
  b.run(30, [&] { return b.received - lat_received >= expect_sat; });
  (void)total_msgs;

  long lost = 0, closed_slow = 0;
  for (auto& c : b.conns) {
    if (c.is_publisher) continue;
    if (c.closed_1013) closed_slow++;
    if (c.upgraded && !c.closed) lost += (lat_msgs + written) - c.got;
  }
  double delivered_per_s = double(sat_received) / sat_wall;
  std::fprintf(stderr,
               "fanout-load: latency phase %.1f s, %ld deliveries, server cpu %.2f s, client cpu %.0f%%\n"
               "fanout-load: saturation %.1f s: %ld messages written, %ld deliveries (%.0f/s), offered %.0f/s, "
               "server cpu %.2f s (%.0f%% of one core), client cpu %.0f%%\n",
               lat_wall, lat_received, cpu_lat, 100 * self_lat / lat_wall, sat_wall, sent, sat_received,
               delivered_per_s, double(sent * open) / sat_wall, cpu_sat, 100 * cpu_sat / sat_wall,
               100 * self_sat / sat_wall);
  std::printf(
      "{\"sockets\": %ld, \"nodes\": %zu, \"delivered_per_s\": %.0f, \"server_us_per_delivery_sat\": %.3f, "
      "\"server_us_per_delivery_lat\": %.3f, \"lat_first_p50_ms\": %.3f, \"lat_last_p50_ms\": %.3f, "
      "\"lat_last_p99_ms\": %.3f, \"lost\": %ld, \"closed_slow\": %ld, \"connected\": %ld, "
      "\"offered_per_s\": %.0f, \"client_cpu_lat\": %.3f, \"client_cpu_sat\": %.3f}\n",
      sockets, ports.size(), delivered_per_s, sat_received ? cpu_sat * 1e6 / double(sat_received) : 0.0,
      lat_received ? cpu_lat * 1e6 / double(lat_received) : 0.0, pct(first, 0.5), pct(last, 0.5), pct(last, 0.99),
      lost, closed_slow, connected, double(sent * open) / sat_wall, self_lat / lat_wall, self_sat / sat_wall);
  return 0;
}

int idle_main(int port, long n) {
  Bench b;
  b.ep = epoll_create1(0);
  b.add(port, true);  // unused publisher slot keeps indices simple
  for (long i = 0; i < n; ++i) {
    b.add(port, false);
    if (i % 256 == 255) b.run(0.05, [] { return false; });
  }
  double t0 = now_s();
  auto all = [&] {
    long u = 0;
    for (auto& c : b.conns) u += c.upgraded || c.closed;
    return u == long(b.conns.size());
  };
  b.run(300, all);
  long up = 0;
  for (auto& c : b.conns) up += c.upgraded && !c.closed;
  std::printf("ready %ld %.1f\n", up, now_s() - t0);
  std::fflush(stdout);
  char ch;
  while (::read(0, &ch, 1) > 0) {}
  return 0;
}

// The kernel floor: a forked writer accepts n loopback connections and writes `msgs` frames to
// each, one write() per frame, then `msgs` more as writev()s of 16; this process reads them all.
// Prints the writer's CPU per message per socket for both.
int floor_main(long n, size_t bytes) {
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(ls, 4096) < 0) die("listen");
  socklen_t al = sizeof a;
  getsockname(ls, reinterpret_cast<sockaddr*>(&a), &al);
  int port = ntohs(a.sin_port);
  const long kSingle = 16, kBatch = 16 * 8;  // messages per socket in each run
  std::string frame = "\x81";
  std::string payload(bytes, 'x');
  frame.push_back(char(bytes < 126 ? bytes : 126));
  if (bytes >= 126) frame += std::string{char(bytes >> 8), char(bytes & 0xff)};
  frame += payload;
  int res[2];
  if (pipe(res) < 0) die("pipe");
  pid_t child = fork();
  if (child == 0) {
    std::vector<int> fds;
    for (long i = 0; i < n; ++i) {
      int fd = accept(ls, nullptr, nullptr);
      if (fd < 0) die("accept");
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fds.push_back(fd);
    }
    double c0 = self_cpu_s();
    for (long m = 0; m < kSingle; ++m)
      for (int fd : fds)
        if (::write(fd, frame.data(), frame.size()) != ssize_t(frame.size())) die("write");
    double single = self_cpu_s() - c0;
    iovec iov[16];
    for (auto& v : iov) v = {frame.data(), frame.size()};
    c0 = self_cpu_s();
    for (long m = 0; m < kBatch / 16; ++m)
      for (int fd : fds)
        if (::writev(fd, iov, 16) != ssize_t(16 * frame.size())) die("writev");
    double batch = self_cpu_s() - c0;
    double r[2] = {single * 1e6 / double(kSingle * n), batch * 1e6 / double(kBatch * n)};
    if (::write(res[1], r, sizeof r) != sizeof r) die("result");
    _exit(0);
  }
  close(ls);
  std::vector<int> fds;
  int ep = epoll_create1(0);
  for (long i = 0; i < n; ++i) {
    sockaddr_in to = a;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) die("connect");
    fcntl(fd, F_SETFL, O_NONBLOCK);
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    fds.push_back(fd);
  }
  const size_t want = size_t(n) * size_t(kSingle + kBatch) * frame.size();
  size_t got = 0;
  char buf[65536];
  epoll_event ev[512];
  double t0 = now_s();
  while (got < want && now_s() - t0 < 120) {
    int k = epoll_wait(ep, ev, 512, 100);
    for (int j = 0; j < k; ++j) {
      ssize_t r;
      while ((r = ::read(ev[j].data.fd, buf, sizeof buf)) > 0) got += size_t(r);
    }
  }
  double r[2] = {0, 0};
  if (::read(res[0], r, sizeof r) != sizeof r) die("floor result");
  waitpid(child, nullptr, 0);
  std::printf("{\"floor_us_single\": %.3f, \"floor_us_batch16\": %.3f, \"floor_bytes_ok\": %s}\n", r[0], r[1],
              got == want ? "true" : "false");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  raise_nofile();
  std::vector<long> ports, pids;
  long sockets = 10000, lat_msgs = 50, idle = 0, floor_n = 0, window = 256;
  double lat_rate = 5, sat_s = 10;
  size_t bytes = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--ports") ports = split(v);
    else if (k == "--pids") pids = split(v);
    else if (k == "--sockets") sockets = std::stol(v);
    else if (k == "--bytes") bytes = std::stoul(v);
    else if (k == "--lat-msgs") lat_msgs = std::stol(v);
    else if (k == "--lat-rate") lat_rate = std::stod(v);
    else if (k == "--sat-s") sat_s = std::stod(v);
    else if (k == "--idle") idle = std::stol(v);
    else if (k == "--window") window = std::stol(v);
    else if (k == "--floor") floor_n = std::stol(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (floor_n > 0) return floor_main(floor_n, bytes);
  if (ports.empty()) {
    std::fprintf(stderr, "--ports is required\n");
    return 2;
  }
  if (idle > 0) return idle_main(int(ports[0]), idle);
  return bench_main(ports, pids, sockets, bytes, lat_msgs, lat_rate, sat_s, window);
}
