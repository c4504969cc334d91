// The admin tests' fixture: a Runtime with a Group namespace LOBBY and a Replica namespace
// ROOM, an AdminServer listening on 127.0.0.1:0, and a blocking client run on another thread
// while the loop is pumped.
#pragma once

#include <catch2/catch.hpp>

#include <future>
#include <nlohmann/json.hpp>
#include <string>

#include "node/admin/admin.h"
#include "node/admin/http_client.h"

namespace dog::admin_test {

using dog::admin::HttpResult;

struct Lobby : Group {
  Namespace& link(Env& env) override { return env["ROOM"]; }
};
struct Room : Replica {
  Namespace& link(Env& env) override { return env["LOBBY"]; }
  Task<Response> receive(Request&) override { co_return Response::text(200, "room"); }
};

// Pumps the loop until `f` is ready: the blocking client runs on another thread.
template <typename T>
T pump(node::Loop& loop, std::future<T>& f) {
  for (int i = 0; i < 6000 && f.wait_for(std::chrono::seconds(0)) != std::future_status::ready; ++i)
    loop.timer().afterDelay(5 * kj::MILLISECONDS).wait(loop.wait_scope());
  REQUIRE(f.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
  return f.get();
}

struct Node {
  node::Loop loop;
  Runtime runtime{loop, RuntimeConfig{}};
  admin::AdminServer server{loop, runtime, admin::AdminOptions{std::chrono::milliseconds(10)}};
  std::string addr;
  Node() {
    runtime.add_group("LOBBY", [] { return std::make_shared<Lobby>(); });
    runtime.add_replica("ROOM", [] { return std::make_shared<Room>(); });
    server.listen(node::parse_endpoint("127.0.0.1:0"));
    addr = "127.0.0.1:" + std::to_string(server.local_endpoint().port());
  }
  HttpResult call(const std::string& method, const std::string& target) {
    auto f = std::async(std::launch::async, [&] { return admin::http_call(addr, method, target); });
    return pump(loop, f);
  }
  nlohmann::json get_json(const std::string& target, int status = 200) {
    auto r = call("GET", target);
    CHECK(r.status == status);
    CHECK(r.header("Content-Type").find("application/json") == 0);
    return nlohmann::json::parse(r.body);
  }
};

inline bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

}  // namespace dog::admin_test
