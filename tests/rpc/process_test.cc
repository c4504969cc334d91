// Two real processes: this test binary is the entry node, dog-rpc-test-server the owner.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <string>

#include "rpc/calls.h"
#include "tests/rpc/harness.h"

extern char** environ;

using namespace dog::rpc;
using namespace dog::rpc::testing;
using dog::node::Loop;

namespace {

std::string hex(const dog::membership::Keyring::Key& k) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (auto b : k) {
    s += d[b >> 4];
    s += d[b & 15];
  }
  return s;
}

std::string server_path() {
  if (const char* dir = std::getenv("DOG_BIN_DIR")) return std::string(dir) + "/dog-rpc-test-server";
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string self(buf, n > 0 ? size_t(n) : 0);
  return self.substr(0, self.rfind('/')) + "/dog-rpc-test-server";
}

// The server process. Its stdin is a pipe we hold: closing it asks the server to exit.
struct ServerProcess {
  explicit ServerProcess(const std::string& name, const dog::membership::Keyring::Key& key) {
    int in[2], out[2];
    REQUIRE(::pipe(in) == 0);
    REQUIRE(::pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::string path = server_path(), key_hex = hex(key);
    std::vector<char*> argv = {path.data(), const_cast<char*>("--name"), const_cast<char*>(name.c_str()),
                               const_cast<char*>("--key"), key_hex.data(), nullptr};
    int rc = posix_spawn(&pid, path.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_w = in[1];
    REQUIRE(rc == 0);
    std::string line;
    char c;
    while (line.size() < 16 && ::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    REQUIRE(!line.empty());
    port = uint16_t(std::stoul(line));
  }
  ~ServerProcess() {
    if (stdin_w >= 0) ::close(stdin_w);
    if (pid > 0) ::waitpid(pid, nullptr, 0);
  }
  void kill() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
  pid_t pid = -1;
  int stdin_w = -1;
  uint16_t port = 0;
};

Target room() {
  Target t;
  t.ns = "Room";
  t.id.fill(5);
  return t;
}

Resolver to(std::string node) {
  return [node](uint64_t) { return Routed{node, 1}; };
}

uint64_t server_flood_bytes(Loop& loop, ConnectionManager& m) {
  auto r = gossip(m, {"srv"}, room(), "stats", "", 2 * kj::SECONDS).wait(loop.wait_scope());
  REQUIRE(r.at(0).ok);
  return std::stoull(r[0].reply);
}

// Opens a relayed WebSocket for `path` on the server process; the server writes to `client`.
capnp::Response<wire::Node::OpenSocketResults> open_socket(Loop& loop, ConnectionManager& m,
                                                           ClientSocket& client, kj::StringPtr path) {
  wire::WsSink::Client to_client = kj::heap<ClientSink>(client);
  return m
      .call("srv", 5 * kj::SECONDS,
            [&](wire::Node::Client node) {
              auto req = node.openSocketRequest();
              set_target(req.initTarget(), room());
              auto info = req.initInfo();
              info.setSocketId(77);
              info.setEntryNode("entry");
              info.initHead().setPath(path);
              req.setToClient(to_client);
              return kj::Promise<capnp::Response<wire::Node::OpenSocketResults>>(req.send());
            })
      .wait(loop.wait_scope());
}

}  // namespace

TEST_CASE("rpc two processes: a request round-trip and streamed bodies both ways", "[rpc][process]") {
  auto key = key_from(11);
  ServerProcess srv("srv", key);
  Loop loop;
  TestPeer me(loop, "entry", key);
  me.manager->add_peer("srv", loopback(srv.port));

  Request r;
  r.path = "/echo";
  r.body = "across processes";
  auto out = deliver(*me.manager, room(), r, to("srv"), 5 * kj::SECONDS).wait(loop.wait_scope());
  CHECK(out.status == 200);
  CHECK(out.body == "echo:across processes");

  // 8 MiB up, streamed in 64 KiB writes.
  std::string body(8 << 20, '\0');
  uint64_t sum = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = char(i * 3 + 1);
    sum += uint8_t(body[i]);
  }
  StringInput in(body, 256 * 1024);
  Request up;
  up.method = "PUT";
  up.path = "/upload";
  auto put = deliver_streamed(*me.manager, "srv", 1, room(), up, in, 64 * 1024, 10 * kj::SECONDS)
                 .wait(loop.wait_scope());
  CHECK(put.body == "bytes=" + std::to_string(body.size()) + " sum=" + std::to_string(sum));

  // 4 MiB down, streamed into our ByteStream.
  std::string got;
  bool ended = false;
  wire::ByteStream::Client sink = kj::heap<CollectBytes>(got, ended);
  const uint64_t n = 4 << 20;
  me.manager
      ->call("srv", 10 * kj::SECONDS,
             [&](wire::Node::Client node) {
               auto req = node.deliverRequest();
               set_target(req.initTarget(), room());
               req.initHead().setPath(kj::str("/big?", n));
               req.setResponseBody(sink);
               return kj::Promise<capnp::Response<wire::Node::DeliverResults>>(req.send());
             })
      .wait(loop.wait_scope());
  CHECK(ended);
  CHECK(got.size() == n);
}

TEST_CASE("rpc two processes: a WebSocket session relays both ways with close codes", "[rpc][process]") {
  auto key = key_from(12);
  ServerProcess srv("srv", key);
  Loop loop;
  TestPeer me(loop, "entry", key);
  me.manager->add_peer("srv", loopback(srv.port));

  ClientSocket client;
  auto opened = open_socket(loop, *me.manager, client, "/echo");
  REQUIRE(opened.getResult().isFromClient());
  auto from_client = opened.getResult().getFromClient();
  for (int i = 0; i < 3; ++i) {
    auto req = from_client.sendRequest();
    req.initMessage().setText(kj::str("msg ", i));
    req.send().wait(loop.wait_scope());
  }
  REQUIRE(wait_until(loop, [&] { return client.texts.size() == 3; }));
  CHECK(client.texts[0] == "msg 0");
  CHECK(client.texts[2] == "msg 2");
  auto close = from_client.closeRequest();
  close.setCode(1001);
  close.setReason("going away");
  close.send().wait(loop.wait_scope());
  CHECK(wait_until(loop, [&] { return client.close_code == 1001; }));
  CHECK(client.close_reason == "going away");
}

TEST_CASE("rpc two processes: a slow WebSocket reader holds the sender back with bounded memory", "[rpc][process]") {
  auto key = key_from(13);
  ServerProcess srv("srv", key);
  Loop loop;
  TestPeer me(loop, "entry", key);
  me.manager->add_peer("srv", loopback(srv.port));

  ClientSocket client;
  client.hold = true;  // the reader stops reading after the first message
  const uint64_t messages = 2048, size = 16 * 1024;  // 32 MiB offered
  auto opened = open_socket(loop, *me.manager, client, kj::str("/flood?", messages, "&", size));
  REQUIRE(opened.getResult().isFromClient());

  // Wait until the sender stalls: the same count five times in a row, 20 ms apart.
  uint64_t last = 0;
  int same = 0;
  for (int i = 0; i < 300 && same < 5; ++i) {
    loop.timer().afterDelay(20 * kj::MILLISECONDS).wait(loop.wait_scope());
    uint64_t now = server_flood_bytes(loop, *me.manager);
    same = (now == last && now > 0) ? same + 1 : 0;
    last = now;
  }
  REQUIRE(same == 5);
  const uint64_t stalled_at = last;
  INFO("sender stalled after " << stalled_at << " bytes with the reader at " << client.binary_bytes);
  CHECK(stalled_at < messages * size / 4);  // far from everything offered...
  CHECK(stalled_at <= 8u << 20);            // ...and within the documented bound
  CHECK(client.binary_messages == 1);

  // The reader resumes: everything arrives, then the close.
  client.release_all();
  REQUIRE(wait_until(loop, [&] { return client.close_code == 1000; }, 10000));
  CHECK(client.binary_bytes == messages * size);
  CHECK(client.binary_messages == messages);
}

TEST_CASE("rpc two processes: a peer killed mid-call fails the call as DISCONNECTED", "[rpc][process]") {
  auto key = key_from(14);
  ServerProcess srv("srv", key);
  Loop loop;
  // A long first backoff, so the calls below surely fall inside it on a loaded machine.
  ManagerConfig cfg;
  cfg.backoff_initial = 4 * kj::SECONDS;
  TestPeer me(loop, "entry", key, cfg);
  me.manager->add_peer("srv", loopback(srv.port));

  Request hang;
  hang.path = "/hang";
  auto pending = deliver(*me.manager, room(), hang, to("srv"), 30 * kj::SECONDS);
  // A later call on the same connection answering proves the server holds the hanging call.
  Request r;
  r.path = "/echo";
  r.body = "before";
  CHECK(deliver(*me.manager, room(), r, to("srv"), 5 * kj::SECONDS).wait(loop.wait_scope()).body ==
        "echo:before");
  CHECK(me.manager->in_flight("srv") == 1);

  srv.kill();
  ErrorKind kind = ErrorKind::kFailed;
  bool failed = false;
  pending.then([](DeliverOutcome) {}, [&](kj::Exception&& e) {
           failed = true;
           kind = classify(e);
         })
      .wait(loop.wait_scope());
  CHECK(failed);
  CHECK(kind == ErrorKind::kDisconnected);
  // The connection's end failed it, not its 30 s deadline (that would be kDeadline).
  CHECK(me.manager->stats().deadlines == 0);
  CHECK(me.manager->in_flight("srv") == 0);
  REQUIRE(wait_until(loop, [&] { return !me.manager->connected("srv"); }));

  // The next call dials, fails, and later calls back off instead of hammering the dead port.
  ErrorKind next = ErrorKind::kFailed;
  deliver(*me.manager, room(), r, to("srv"), 5 * kj::SECONDS)
      .then([](DeliverOutcome) {}, [&](kj::Exception&& e) { next = classify(e); })
      .wait(loop.wait_scope());
  CHECK(next == ErrorKind::kDisconnected);
  CHECK(me.manager->stats().dial_failures == 1);
  const auto dials = me.manager->stats().dials;
  REQUIRE(wait_until(loop, [&] { return me.manager->backoff_remaining("srv") > 0 * kj::SECONDS; }));
  // Calls made during the backoff fail at once, without dialling the dead port again.
  for (int i = 0; i < 3; ++i) {
    ErrorKind later = ErrorKind::kFailed;
    deliver(*me.manager, room(), r, to("srv"), 5 * kj::SECONDS)
        .then([](DeliverOutcome) {}, [&](kj::Exception&& e) { later = classify(e); })
        .wait(loop.wait_scope());
    CHECK(later == ErrorKind::kDisconnected);
  }
  CHECK(me.manager->stats().dials == dials);
  CHECK(me.manager->stats().refused_backoff == 3);
  CHECK(me.manager->stats().dial_failures == 1);
}

TEST_CASE("rpc two processes: a relayed WebSocket sees the Replica node's death as DISCONNECTED", "[rpc][process]") {
  auto key = key_from(15);
  ServerProcess srv("srv", key);
  Loop loop;
  TestPeer me(loop, "entry", key);
  me.manager->add_peer("srv", loopback(srv.port));
  ClientSocket client;
  auto opened = open_socket(loop, *me.manager, client, "/echo");
  REQUIRE(opened.getResult().isFromClient());
  auto from_client = opened.getResult().getFromClient();
  {
    auto req = from_client.sendRequest();
    req.initMessage().setText("alive");
    req.send().wait(loop.wait_scope());
  }
  REQUIRE(wait_until(loop, [&] { return client.texts.size() == 1; }));
  srv.kill();
  // Once the loop has seen the connection end, the next message fails (the broken capability)
  // instead of vanishing; the entry node would close the client socket with 1011/1012 here.
  // (A streaming send whose window is open resolves at once, without running I/O, so the test
  // lets the loop notice first, as a running node's loop does by itself.)
  REQUIRE(wait_until(loop, [&] { return !me.manager->connected("srv"); }));
  kj::Maybe<kj::Exception> error;
  for (int i = 0; i < 3 && error == nullptr; ++i) {
    auto req = from_client.sendRequest();
    req.initMessage().setText("anyone?");
    error = kj::runCatchingExceptions([&] { req.send().wait(loop.wait_scope()); });
  }
  KJ_IF_MAYBE(e, error) { CHECK(classify(*e) == ErrorKind::kDisconnected); }
  else { FAIL("sends to a dead node kept succeeding"); }
  CHECK(client.close_code == 0);  // no close was sent: this is an error, not a close
}
