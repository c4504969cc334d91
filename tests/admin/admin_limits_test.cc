// The admin endpoint under hostile clients, in process over loopback: silent connections are
// closed and cannot lock out the probes, /objects is bounded by ?limit, query values that are
// not UTF-8 are a 400 (never a 500), and peer-chosen RPC method ids do not grow the metrics.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <vector>

#include "node/admin/admin.h"
#include "node/admin/dogctl_print.h"
#include "node/admin/rpc_timing.h"
#include "tests/admin/admin_fixture.h"
#include "tests/rpc/test_host.h"

using namespace dog;
using namespace dog::admin_test;

namespace {

// A TCP connection to 127.0.0.1:port that never sends a byte. -1 if connect() failed.
int silent_connection(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Blocks until the peer closes `fd` (EOF or reset): true, or false after a 60 s backstop.
bool wait_closed(int fd) {
  timeval tv{60, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char b;
  ssize_t n = ::recv(fd, &b, 1, 0);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

}  // namespace

TEST_CASE("admin limits: a silent connection is closed after the admin timeout", "[admin]") {
  Node n;
  int fd = silent_connection(n.server.local_endpoint().port());
  REQUIRE(fd >= 0);
  const auto start = std::chrono::steady_clock::now();
  auto f = std::async(std::launch::async, [fd] { return wait_closed(fd); });
  CHECK(pump(n.loop, f));
  // Not before the timeout (a lower bound only: a slow machine may take longer).
  CHECK(std::chrono::steady_clock::now() - start >= admin::kAdminTimeout - std::chrono::milliseconds(100));
  ::close(fd);
}

TEST_CASE("admin limits: /healthz answers while many silent connections are open", "[admin]") {
  Node n;
  n.server.set_phase(admin::Phase::kServing);
  // More than the old cap of 64, fewer than the admin cap: the probe must still get in.
  std::vector<int> fds;
  for (int i = 0; i < 200; ++i) {
    int fd = silent_connection(n.server.local_endpoint().port());
    REQUIRE(fd >= 0);
    fds.push_back(fd);
  }
  auto h = n.call("GET", "/healthz");
  CHECK(h.status == 200);
  CHECK(n.call("GET", "/readyz").status == 200);
  for (int fd : fds) ::close(fd);
}

TEST_CASE("admin limits: /objects?limit cuts the list and says it is truncated", "[admin]") {
  Node n;
  auto& room = n.runtime.env()["ROOM"];
  for (int i = 0; i < 5; ++i) n.runtime.replica(room, room.id_from_name("r" + std::to_string(i)).hex());
  auto all = n.get_json("/objects");
  CHECK(all["objects"].size() == 5);
  CHECK_FALSE(all.contains("truncated"));
  auto cut = n.get_json("/objects?limit=2");
  CHECK(cut["objects"].size() == 2);
  CHECK(cut["truncated"] == true);
  auto exact = n.get_json("/objects?ns=ROOM&limit=5");
  CHECK(exact["objects"].size() == 5);
  CHECK_FALSE(exact.contains("truncated"));
  CHECK(n.get_json("/objects?limit=0", 400).contains("error"));
  CHECK(n.get_json("/objects?limit=100001", 400).contains("error"));
  CHECK(n.get_json("/objects?limit=abc", 400).contains("error"));
  CHECK(n.get_json("/objects?limit=100000")["objects"].size() == 5);
  const std::string table = admin::objects_table(cut, false);
  CHECK(table.find("(only the first 2: use --limit for more)\n") != std::string::npos);
  CHECK(admin::objects_table(all, false).find("--limit") == std::string::npos);
}

TEST_CASE("admin limits: a query value that is not UTF-8 is a 400, never a 500", "[admin]") {
  Node n;
  CHECK_FALSE(admin::percent_decode("%FF"));
  CHECK_FALSE(admin::percent_decode("caf%C3"));         // truncated sequence
  CHECK_FALSE(admin::percent_decode("%C0%AF"));         // overlong
  CHECK_FALSE(admin::percent_decode("%ED%A0%80"));      // a surrogate
  CHECK(admin::percent_decode("%F0%9F%90%B6") == "\xF0\x9F\x90\xB6");
  auto w = n.get_json("/where?ns=%FF&name=x", 400);
  CHECK(w.contains("error"));
  CHECK(n.get_json("/where?ns=LOBBY&name=%FF", 400).contains("error"));
  CHECK(n.get_json("/objects?ns=%FF", 400).contains("error"));
  CHECK(n.call("GET", "/healthz").status == 200);
  // A name from the network that is not UTF-8 (a member's) is written with U+FFFD, no throw.
  auto r = admin::json_response(200, Json{{"name", "n\xFF" "1"}});
  CHECK(r.status == 200);
  CHECK(nlohmann::json::parse(r.body)["name"] == "n\xEF\xBF\xBD" "1");
}

TEST_CASE("admin limits: RPC method ids outside the schema are counted as unknown", "[admin]") {
  node::Loop loop;
  rpc::testing::HostState state;
  state.name = "a";
  auto metrics = std::make_shared<admin::RpcMetrics>();
  capnp::Capability::Client client = admin::timed(rpc::testing::make_test_node(state, loop.timer()), metrics);
  const uint64_t node_iface = capnp::typeId<rpc::wire::Node>();
  for (uint16_t id : {uint16_t(900), uint16_t(901), uint16_t(65535)}) {
    auto r = client.typelessRequest(node_iface, id, capnp::MessageSize{4, 0});
    r.initAsAnyStruct(0, 0);
    CHECK_THROWS(r.send().wait(loop.wait_scope()));
  }
  auto other = client.typelessRequest(0x1234567812345678ull, 0, capnp::MessageSize{4, 0});
  other.initAsAnyStruct(0, 0);
  CHECK_THROWS(other.send().wait(loop.wait_scope()));
  const auto& m = metrics->methods();
  CHECK(m.size() == 1);
  REQUIRE(m.count("unknown"));
  CHECK(m.at("unknown").seconds.count() == 4);
  CHECK(admin::node_method_name(900) == "unknown");
  CHECK(admin::node_method_name(15) == "lookup");
}
