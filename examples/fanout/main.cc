// dog-fanout: the broadcast contract that tools outside the project drive (issue 13).
//
//   build/bin/dog-fanout --http 127.0.0.1:8080 [cluster flags] [--limit 1000]
//
// * `/ws?room=NAME` (room `lobby` if the parameter is absent or empty) upgrades to a WebSocket.
//   Every message a client sends is broadcast verbatim, the same bytes as one text frame, to
//   every socket in the room on every node, the sender included. Nothing else is ever sent to a
//   client: no join, leave or error messages. NAME is taken as sent (not percent-decoded).
// * `GET /` answers one line of text saying so; any other path is 404, a room name over 256
//   bytes is 400.
// * A room is a DOG Group ("ROOM"); its Replicas ("MEMBERS") hold up to --limit sockets each,
//   and the Group opens more Replicas (spread over the cluster's nodes) as the room grows.
// * The DOG API does not tell text from binary messages, so a binary message is relayed as a
//   text frame too; the contract covers text messages only.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

#include "dog/dog.h"

namespace {

constexpr const char* kAbout =
    "dog-fanout: every text message sent on /ws?room=NAME (default lobby) is broadcast verbatim "
    "to every socket in the room on every node, the sender included\n";
constexpr size_t kMaxRoomName = 256;

struct Room : dog::Group {
  dog::Namespace& link(dog::Env& env) override { return env["MEMBERS"]; }
};

struct Members : dog::Replica {
  dog::Namespace& link(dog::Env& env) override { return env["ROOM"]; }

  dog::Task<dog::Response> receive(dog::Request& req) override {
    if (req.path() == "/ws") co_return co_await connect(req);
    co_return dog::Response::text(404, "no such route\n");
  }

  dog::Task<void> onmessage(dog::Socket& socket, std::string_view data) override {
    // A JSON string is sent as its raw text (Runtime::serialize): the bytes arrive unchanged,
    // encoded once per node and shared by every recipient's queue there.
    dog::Json text = std::string(data);
    co_await socket.broadcast(std::move(text), /*self=*/true);
  }
};

// Each connection is its own request id, so the Group counts it as one slot. Random per process
// (nodes never collide) and then counted.
std::string next_connection_id() {
  static const uint64_t prefix = [] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
  }();
  static uint64_t counter = 0;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%016llx-%llu", static_cast<unsigned long long>(prefix),
                static_cast<unsigned long long>(++counter));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  dog::App app;
  int limit = 1000;
  app.cli().add_option("--limit", limit, "most sockets per Replica of a room")->capture_default_str();
  app.add_group("ROOM", [&limit] {
    auto room = std::make_shared<Room>();
    room->limit = limit;
    return room;
  });
  app.replica<Members>("MEMBERS");
  app.fetch([](dog::Request& req, dog::Env& env) -> dog::Task<dog::Response> {
    auto path = req.path();
    if (path == "/") {
      if (req.method != "GET" && req.method != "HEAD") co_return dog::Response::method_not_allowed("GET, HEAD");
      co_return dog::Response::text(200, kAbout);
    }
    if (path != "/ws") co_return dog::Response::text(404, "no such route\n");
    std::string room(req.query_param("room").value_or(""));
    if (room.empty()) room = "lobby";
    if (room.size() > kMaxRoomName) co_return dog::Response::text(400, "room name too long\n");
    auto gid = env["ROOM"].id_from_name(room);
    auto members = co_await dog::identify(gid, next_connection_id(), {env["ROOM"], env["MEMBERS"]});
    co_return co_await members.fetch(req);
  });
  return app.run(argc, argv);
}
