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
//   text frame too if it is valid UTF-8, and dropped if not (as a text frame it would make every
//   receiver close with 1007); the contract covers text messages only.
#include <CLI/CLI.hpp>
#include <cstdint>
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
    if (!dog::http::valid_utf8(data)) co_return;  // a binary message that cannot be text
    // A JSON string is sent as its raw text (Runtime::serialize): the bytes arrive unchanged,
    // encoded once per node and shared by every recipient's queue there.
    dog::Json text = std::string(data);
    co_await socket.broadcast(std::move(text), /*self=*/true);
  }
};

// Each connection is its own request id, so the Group counts it as one slot: 8 base-36 digits
// drawn at random per process (nodes never collide) and then a base-36 counter. Up to 15
// characters in all, so every copy the runtime keeps (socket, pool, index) fits in std::string's
// inline buffer: no heap block per copy.
std::string next_connection_id() {
  static const char* kDigits = "0123456789abcdefghijklmnopqrstuvwxyz";
  static const std::string prefix = [] {
    std::random_device rd;
    uint64_t r = (uint64_t{rd()} << 32) ^ rd();
    std::string p(8, '0');
    for (auto& c : p) c = kDigits[r % 36], r /= 36;
    return p;
  }();
  static uint64_t counter = 0;
  std::string id = prefix;
  for (uint64_t n = ++counter; n > 0; n /= 36) id.push_back(kDigits[n % 36]);
  return id;
}

}  // namespace

int main(int argc, char** argv) {
  dog::App app;
  int limit = 1000;
  app.cli()
      .add_option("--limit", limit, "most sockets per Replica of a room")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
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
