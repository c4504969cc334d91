// dog-rpc-bench: node-to-node RPC across two processes on loopback.
//
//   dog-rpc-bench [--calls N] [--pipelined N] [--in-flight K] [--rounds R] [--stream-mib M]
//                 [--fanouts F] [--payload B]
//
// The process forks a server (a second process, same binary) that serves
//   * a plain TCP echo (the raw baseline: blocking write + read of the same payload), and
//   * two dog-rpc listeners: one with the secure channel, one with the same framing and no
//     crypto (`ChannelConfig::encrypt = false`), each serving a minimal Node.
// The client measures, in this order: raw TCP ping-pong; sequential and pipelined RPC (plain);
// the same encrypted; a streamed request body; a fan-out to 1000 recipients. Every RPC goes
// through ConnectionManager::call() (deadline, in-flight accounting), i.e. the real client path.
// Progress goes to stderr; the last stdout line is one JSON object.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/posix/stream_descriptor.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "membership/keyring.h"
#include "membership/rng.h"
#include "node/loop.h"
#include "rpc/calls.h"
#include "rpc/connection_manager.h"

using namespace dog;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int calls = 20000;     // per round
  int pipelined = 100000;  // per round
  int in_flight = 100;
  int stream_mib = 256;
  int fanouts = 2000;
  size_t payload = 64;
  int rounds = 5;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

membership::Keyring::Key bench_key() {
  membership::Keyring::Key k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = uint8_t(i * 7 + 3);
  return k;
}

// The server's Node: gossip echoes, open counts body bytes, fanOut "delivers" to fake sockets.
class BenchNode final : public rpc::wire::Node::Server {
 public:
  kj::Promise<void> gossip(GossipContext c) override {
    c.getResults().setReply(c.getParams().getPayload());
    return kj::READY_NOW;
  }
  kj::Promise<void> open(OpenContext c) override {
    c.getResults().initResult().setCall(kj::heap<Sink>());
    return kj::READY_NOW;
  }
  kj::Promise<void> fanOut(FanOutContext c) override {
    auto m = c.getParams().getMessage();
    auto text = m.getMessage().getText();
    uint32_t delivered = 0;
    for (auto id : m.getRecipients()) {
      // A real node appends the frame to each socket's write queue; touch per-socket state.
      sockets_[id % sockets_.size()] += text.size();
      ++delivered;
    }
    c.getResults().initResult().setDelivered(delivered);
    return kj::READY_NOW;
  }

 private:
  class Sink final : public rpc::wire::RequestCall::Server {
   public:
    kj::Promise<void> write(WriteContext c) override {
      bytes_ += c.getParams().getData().size();
      return kj::READY_NOW;
    }
    kj::Promise<void> finish(FinishContext c) override {
      auto r = c.getResults().initResponse();
      r.initHead().setStatus(200);
      return kj::READY_NOW;
    }
    uint64_t bytes_ = 0;
  };
  std::vector<uint64_t> sockets_ = std::vector<uint64_t>(4096);
};

int listen_raw(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(fd, 4);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

bool read_full(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

// ---- server process -----------------------------------------------------------------------
int run_server(int report_fd, size_t payload) {
  uint16_t raw_port = 0;
  int raw = listen_raw(&raw_port);
  node::Loop loop;
  membership::Keyring keyring(bench_key());
  membership::Rng rng(1);
  rpc::ManagerConfig plain_cfg, enc_cfg;
  plain_cfg.node_name = enc_cfg.node_name = "server";
  plain_cfg.channel.encrypt = false;
  auto ep = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
  rpc::ConnectionManager plain(loop, keyring, plain_cfg, kj::heap<BenchNode>(), rng);
  rpc::ConnectionManager enc(loop, keyring, enc_cfg, kj::heap<BenchNode>(), rng);
  uint16_t plain_port = plain.listen(ep), enc_port = enc.listen(ep);
  std::string ports = std::to_string(raw_port) + " " + std::to_string(plain_port) + " " +
                      std::to_string(enc_port) + "\n";
  if (::write(report_fd, ports.data(), ports.size()) < 0) return 1;
  ::close(report_fd);

  // Phase 1: raw echo, blocking, until the client closes.
  int c = ::accept(raw, nullptr, nullptr);
  int one = 1;
  ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<char> buf(payload);
  while (read_full(c, buf.data(), payload)) {
    if (::write(c, buf.data(), payload) != ssize_t(payload)) break;
  }
  ::close(c);
  ::close(raw);
  // Phase 2: RPC until stdin (a pipe from the client) closes.
  asio::posix::stream_descriptor in(loop.io(), ::dup(0));
  char b[16];
  std::function<void()> watch = [&] {
    in.async_read_some(asio::buffer(b), [&](std::error_code ec, size_t) {
      if (ec) loop.stop();
      else watch();
    });
  };
  watch();
  loop.run();
  return 0;
}

// ---- client ---------------------------------------------------------------------------------
double raw_rtt_per_s(uint16_t port, int n, size_t payload, int rounds) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 0;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<char> buf(payload, 'p');
  for (int i = 0; i < 1000; ++i) {  // warm-up
    if (::write(fd, buf.data(), payload) < 0 || !read_full(fd, buf.data(), payload)) return 0;
  }
  std::vector<double> rates;
  for (int r = 0; r < rounds; ++r) {
    auto t = Clock::now();
    for (int i = 0; i < n; ++i) {
      if (::write(fd, buf.data(), payload) < 0 || !read_full(fd, buf.data(), payload)) return 0;
    }
    rates.push_back(n / seconds_since(t));
  }
  ::close(fd);
  return median(rates);
}

struct Client {
  Client(node::Loop& loop, bool encrypt, uint16_t port)
      : loop(loop), keyring(bench_key()), rng(2) {
    rpc::ManagerConfig cfg;
    cfg.node_name = encrypt ? "client-enc" : "client-plain";
    cfg.channel.encrypt = encrypt;
    cfg.max_in_flight_per_peer = 100000;
    manager = std::make_unique<rpc::ConnectionManager>(loop, keyring, cfg, kj::heap<BenchNode>(), rng);
    manager->add_peer("server", asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  kj::Promise<void> echo(const std::string& payload) {
    return manager
        ->call("server", 10 * kj::SECONDS,
               [&payload](rpc::wire::Node::Client node) {
                 auto req = node.gossipRequest(capnp::MessageSize{16 + payload.size() / 8, 0});
                 req.setPayload(kj::arrayPtr(reinterpret_cast<const kj::byte*>(payload.data()),
                                             payload.size()));
                 return kj::Promise<capnp::Response<rpc::wire::Node::GossipResults>>(req.send());
               })
        .then([&payload](capnp::Response<rpc::wire::Node::GossipResults> r) {
          KJ_REQUIRE(r.getReply().size() == payload.size());
        });
  }

  double seq(int n, const std::string& payload) {
    for (int i = 0; i < 1000; ++i) echo(payload).wait(loop.wait_scope());
    auto t = Clock::now();
    for (int i = 0; i < n; ++i) echo(payload).wait(loop.wait_scope());
    return n / seconds_since(t);
  }

  kj::Promise<void> chain(int remaining, const std::string& payload) {
    if (remaining == 0) return kj::READY_NOW;
    return echo(payload).then([this, remaining, &payload] { return chain(remaining - 1, payload); });
  }

  double pipelined(int total, int in_flight, const std::string& payload) {
    auto t = Clock::now();
    kj::Vector<kj::Promise<void>> chains;
    for (int c = 0; c < in_flight; ++c) chains.add(chain(total / in_flight, payload));
    kj::joinPromises(chains.releaseAsArray()).wait(loop.wait_scope());
    return (total / in_flight) * in_flight / seconds_since(t);
  }

  double stream_mb_per_s(int mib) {
    class Zeros final : public kj::AsyncInputStream {
     public:
      explicit Zeros(uint64_t n) : left_(n) {}
      kj::Promise<size_t> tryRead(void* buf, size_t, size_t max) override {
        size_t n = std::min<uint64_t>(max, left_);
        std::memset(buf, 0x5a, n);
        left_ -= n;
        return n;
      }
      uint64_t left_;
    };
    const uint64_t bytes = uint64_t(mib) << 20;
    Zeros in(bytes);
    rpc::Target t;
    t.ns = "Bench";
    rpc::Request r;
    r.path = "/upload";
    auto start = Clock::now();
    auto out = rpc::deliver_streamed(*manager, "server", 1, t, r, in, 64 * 1024, 120 * kj::SECONDS)
                   .wait(loop.wait_scope());
    double s = seconds_since(start);
    KJ_REQUIRE(out.status == 200);
    return bytes / 1e6 / s;
  }

  double fanout_us(int n, uint32_t recipients) {
    auto one = [&]() {
      return manager
          ->call("server", 10 * kj::SECONDS,
                 [recipients](rpc::wire::Node::Client node) {
                   auto req = node.fanOutRequest();
                   auto m = req.initMessage();
                   m.initGroup().setNs("Room");
                   auto rs = m.initRecipients(recipients);
                   for (uint32_t i = 0; i < recipients; ++i) rs.set(i, i * 3 + 1);
                   m.initMessage().setText("a 64-byte chat message, the kind a room broadcast carries....");
                   return kj::Promise<capnp::Response<rpc::wire::Node::FanOutResults>>(req.send());
                 })
          .then([recipients](capnp::Response<rpc::wire::Node::FanOutResults> r) {
            KJ_REQUIRE(r.getResult().getDelivered() == recipients);
          });
    };
    for (int i = 0; i < 100; ++i) one().wait(loop.wait_scope());
    auto t = Clock::now();
    for (int i = 0; i < n; ++i) one().wait(loop.wait_scope());
    return seconds_since(t) / n * 1e6;
  }

  node::Loop& loop;
  membership::Keyring keyring;
  membership::Rng rng;
  std::unique_ptr<rpc::ConnectionManager> manager;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (a == "--calls") o.calls = v;
    else if (a == "--pipelined") o.pipelined = v;
    else if (a == "--in-flight") o.in_flight = v;
    else if (a == "--stream-mib") o.stream_mib = v;
    else if (a == "--fanouts") o.fanouts = v;
    else if (a == "--payload") o.payload = size_t(v);
    else if (a == "--rounds") o.rounds = std::max(1, v);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }

  int report[2], control[2];
  if (::pipe(report) != 0 || ::pipe(control) != 0) return 1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(report[0]);
    ::close(control[1]);
    ::dup2(control[0], 0);
    ::close(control[0]);
    ::_exit(run_server(report[1], o.payload));
  }
  ::close(report[1]);
  ::close(control[0]);
  std::string line;
  char ch;
  while (line.size() < 64 && ::read(report[0], &ch, 1) == 1 && ch != '\n') line += ch;
  ::close(report[0]);
  unsigned raw_port = 0, plain_port = 0, enc_port = 0;
  if (std::sscanf(line.c_str(), "%u %u %u", &raw_port, &plain_port, &enc_port) != 3) {
    std::fprintf(stderr, "server did not start\n");
    return 1;
  }

  nlohmann::json out;
  std::string payload(o.payload, 'x');
  std::fprintf(stderr, "raw TCP ping-pong, %d x %d round trips of %zu bytes...\n", o.rounds, o.calls, o.payload);
  double raw = raw_rtt_per_s(uint16_t(raw_port), o.calls, o.payload, o.rounds);
  out["raw_tcp_seq_rtt_per_s"] = std::round(raw);
  {
    node::Loop loop;
    Client plain(loop, false, uint16_t(plain_port));
    Client enc(loop, true, uint16_t(enc_port));
    // Plain and encrypted runs alternate, `rounds` times each, and the medians are reported:
    // the machine is shared, and alternating keeps a burst of load from landing on one side.
    std::vector<double> seqs, eseqs, pipes, epipes;
    for (int r = 0; r < o.rounds; ++r) {
      std::fprintf(stderr, "round %d/%d: %d sequential calls plain, then encrypted...\n", r + 1,
                   o.rounds, o.calls);
      seqs.push_back(plain.seq(o.calls, payload));
      eseqs.push_back(enc.seq(o.calls, payload));
      std::fprintf(stderr, "  sequential calls/s: plain %.0f, encrypted %.0f\n", seqs.back(),
                   eseqs.back());
      std::fprintf(stderr, "round %d/%d: %d calls with %d in flight, plain then encrypted...\n",
                   r + 1, o.rounds, o.pipelined, o.in_flight);
      pipes.push_back(plain.pipelined(o.pipelined, o.in_flight, payload));
      epipes.push_back(enc.pipelined(o.pipelined, o.in_flight, payload));
      std::fprintf(stderr, "  pipelined calls/s: plain %.0f, encrypted %.0f\n", pipes.back(),
                   epipes.back());
    }
    double seq = median(seqs), eseq = median(eseqs), pipe = median(pipes), epipe = median(epipes);
    std::fprintf(stderr, "streamed body: %d MiB encrypted, then plain...\n", o.stream_mib);
    double stream = enc.stream_mb_per_s(o.stream_mib);
    double plain_stream = plain.stream_mb_per_s(o.stream_mib);
    std::fprintf(stderr, "fan-out: %d messages to 1000 recipients...\n", o.fanouts);
    double fan = enc.fanout_us(o.fanouts, 1000);

    out["payload_bytes"] = o.payload;
    out["rpc_seq_calls_per_s"] = std::round(seq);
    out["rpc_seq_ratio"] = std::round(seq / raw * 1000) / 1000;
    out["rpc_pipelined_calls_per_s"] = std::round(pipe);
    out["pipelined_in_flight"] = o.in_flight;
    out["rounds"] = o.rounds;
    out["encrypted_seq_calls_per_s"] = std::round(eseq);
    out["encrypted_pipelined_calls_per_s"] = std::round(epipe);
    out["encryption_overhead"] = std::round((1 - eseq / seq) * 1000) / 1000;
    out["encryption_overhead_pipelined"] = std::round((1 - epipe / pipe) * 1000) / 1000;
    out["stream_mb_per_s"] = std::round(stream * 10) / 10;
    out["stream_plain_mb_per_s"] = std::round(plain_stream * 10) / 10;
    out["fanout_1000_recipients_us"] = std::round(fan * 10) / 10;
  }
  ::close(control[1]);  // the server exits on EOF
  ::waitpid(pid, nullptr, 0);
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
