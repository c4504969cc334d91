// dog-ws-baseline: the smallest WebSocket echo we could write, as a same-run floor for
// bench/front-door. Not dog code: one thread, level-triggered epoll, one read() of up to 64 KiB
// per ready socket, every frame in it echoed into one output buffer, one write() per read.
// That matches dog's batching (one flush per loop turn) and skips everything else dog does: no
// UTF-8 check on text, no per-socket send cap beyond 16 MiB, no timers, no fragment reassembly
// (frames are echoed one by one). Handshake: SHA-1 from libcrypto. Benchmark use only.
//
// Usage: dog-ws-baseline PORT   (listens on 127.0.0.1:PORT until killed)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

namespace {

constexpr size_t kMaxHead = 8 << 10, kMaxPayload = 1 << 20, kMaxOut = 16 << 20;

struct Conn {
  std::string in, out;
  bool upgraded = false, closing = false, polling_out = false;
};

// Answers the upgrade once the head is complete; false if it is malformed.
bool handshake(Conn& c) {
  size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) return c.in.size() <= kMaxHead;
  std::string key;
  for (size_t p = c.in.find("\r\n"); p < end; p = c.in.find("\r\n", p + 2)) {
    const char* line = c.in.data() + p + 2;
    if (strncasecmp(line, "Sec-WebSocket-Key:", 18) == 0) {
      size_t v = p + 2 + 18, e = c.in.find("\r\n", v);
      while (v < e && c.in[v] == ' ') ++v;
      key.assign(c.in, v, e - v);
    }
  }
  if (key.empty()) return false;
  key += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  unsigned char accept[32];
  EVP_EncodeBlock(accept, digest, sizeof digest);
  c.out += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
  c.out += reinterpret_cast<char*>(accept);
  c.out += "\r\n\r\n";
  c.in.erase(0, end + 4);
  c.upgraded = true;
  return true;
}

void put_frame(std::string& out, unsigned char b0, const char* payload, size_t n) {
  out.push_back(static_cast<char>(b0));
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n < 65536) {
    out.push_back(126);
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n));
  } else {
    out.push_back(127);
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(uint64_t(n) >> (8 * i)));
  }
  out.append(payload, n);
}

// Echoes every complete client frame in c.in; false on a protocol error.
bool echo_frames(Conn& c) {
  size_t pos = 0;
  while (!c.closing) {
    const auto* b = reinterpret_cast<const unsigned char*>(c.in.data() + pos);
    size_t avail = c.in.size() - pos;
    if (avail < 2) break;
    if (!(b[1] & 0x80)) return false;  // client frames must be masked
    size_t n = b[1] & 0x7f, h = 2;
    if (n == 126) {
      if (avail < 4) break;
      n = (size_t(b[2]) << 8) | b[3], h = 4;
    } else if (n == 127) {
      if (avail < 10) break;
      n = 0;
      for (int i = 0; i < 8; ++i) n = (n << 8) | b[2 + i];
      h = 10;
    }
    if (n > kMaxPayload) return false;
    if (avail < h + 4 + n) break;
    char* p = c.in.data() + pos + h + 4;
    for (size_t i = 0; i < n; ++i) p[i] ^= b[h + (i & 3)];
    unsigned op = b[0] & 0x0f;
    if (op == 0x8) {
      put_frame(c.out, 0x88, p, n);
      c.closing = true;
    } else if (op == 0x9) {
      put_frame(c.out, 0x8a, p, n);
    } else if (op != 0xa) {
      put_frame(c.out, b[0], p, n);
    }
    pos += h + 4 + n;
  }
  c.in.erase(0, pos);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: dog-ws-baseline PORT\n");
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(lfd, 1024) != 0) {
    std::perror("dog-ws-baseline: listen");
    return 2;
  }
  int ep = epoll_create1(0);
  epoll_event ev{EPOLLIN, {.fd = lfd}};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::unordered_map<int, Conn> conns;
  static char buf[64 << 10];
  epoll_event events[256];
  for (;;) {
    int k = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < k; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (int c; (c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{EPOLLIN, {.fd = c}};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          conns[c];
        }
        continue;
      }
      Conn& c = conns[fd];
      bool ok = true;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
          c.in.append(buf, static_cast<size_t>(n));
          ok = (c.upgraded || handshake(c)) && (!c.upgraded || echo_frames(c));
        } else {
          ok = n < 0 && errno == EAGAIN;
        }
      }
      if (ok && !c.out.empty()) {
        ssize_t w = write(fd, c.out.data(), c.out.size());
        if (w > 0) c.out.erase(0, static_cast<size_t>(w));
        else if (errno != EAGAIN) ok = false;
        ok = ok && c.out.size() <= kMaxOut;
      }
      if (ok && c.polling_out == c.out.empty()) {  // ask for EPOLLOUT only while output waits
        c.polling_out = !c.out.empty();
        epoll_event mev{static_cast<uint32_t>(EPOLLIN | (c.polling_out ? uint32_t{EPOLLOUT} : 0u)), {.fd = fd}};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &mev);
      }
      if (!ok || (c.closing && c.out.empty())) {
        close(fd);
        conns.erase(fd);
      }
    }
  }
}
