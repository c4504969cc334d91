// dog-chat: DOG's chat room example (dog-semantics §6) as a C++ program.
//
//   build/bin/dog-chat --http 127.0.0.1:8080 --limit 2
//
// Routes: `/` the page, `/ws?u=NAME` the WebSocket, `/broadcast`, `/emit`, `/whisper?target=X`
// (HTTP senders), anything else `PATH: "<path>"`.
#include <CLI/CLI.hpp>
#include <chrono>
#include <map>
#include <set>

#include "command.h"
#include "dog/dog.h"
#include "page.h"

namespace {

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

struct Lobby : dog::Group {
  dog::Namespace& link(dog::Env& env) override { return env["ROOM"]; }
};

struct Room : dog::Replica {
  // Users online on this Replica: socket identity (the request id identify() checked) -> open
  // sockets. Bounded by the Replica's connection limit; nothing a client sends adds to it.
  std::map<std::string, int> users;

  dog::Namespace& link(dog::Env& env) override { return env["LOBBY"]; }

  dog::Task<dog::Response> receive(dog::Request& req) override {
    auto path = req.path();
    if (path == "/ws") co_return co_await connect(req);
    if (path == "/broadcast") {
      dog::Json msg = {{"type", "user:msg"}, {"from", "HTTP"}, {"text", "SENT VIA \"/broadcast\" HTTP route"}, {"time", now_ms()}};
      co_await broadcast(msg);
      co_return dog::Response::text(200, "DONE");
    }
    if (path == "/whisper") {
      std::string target(req.query_param("target").value_or("aaa"));
      dog::Json msg = {{"type", "user:msg"}, {"from", "HTTP"}, {"text", "SENT VIA \"/whisper\" HTTP route"},
                       {"time", now_ms()}, {"meta", "whisper"}, {"to", target}};
      co_await whisper(target, msg);
      co_return dog::Response::text(200, "DONE");
    }
    if (path == "/emit") {
      emit({{"type", "user:msg"}, {"from", "HTTP"}, {"text", "SENT VIA \"/emit\" HTTP route"}, {"time", now_ms()}, {"meta", "group"}});
      co_return dog::Response::text(200, "DONE");
    }
    // DOG answers 200 here; dog keeps the body but says 404, so clients see a clear error.
    co_return dog::Response::text(404, "PATH: \"" + std::string(path) + "\"");
  }

  dog::Task<void> onopen(dog::Socket& socket) override {
    // Which cluster node serves this room Replica (the page shows it; "" on one node).
    socket.send({{"type", "meta"}, {"node", node()}});
    // GCC 12 miscompiles braced temporaries inside co_await expressions: build values first.
    dog::Json join = {{"type", "user:join"}, {"from", socket.uid()}, {"time", now_ms()}};
    co_await socket.broadcast(join, true);
    users[socket.uid()]++;
  }

  dog::Task<void> onclose(dog::Socket& socket) override {
    dog::Json exit = {{"type", "user:exit"}, {"from", socket.uid()}, {"time", now_ms()}};
    co_await socket.broadcast(exit);
    auto it = users.find(socket.uid());
    if (it != users.end() && --it->second <= 0) users.erase(it);
  }

  dog::Task<dog::Json> ongossip(const dog::Json& msg) override {
    if (msg.value("type", "") == "intra:user:list") {
      dog::Json list = dog::Json::array();
      for (auto& [u, t] : users) list.push_back(u);
      co_return list;
    }
    throw std::runtime_error("Missing: \"" + msg.value("type", "") + "\" ongossip");
  }

  dog::Task<void> onmessage(dog::Socket& socket, std::string_view data) override {
    dog::Json input = dog::Json::parse(data, nullptr, /*allow_exceptions=*/false);
    if (!input.is_object()) {
      socket.send({{"type", "error"}, {"error", "messages must be JSON objects"}});
      co_return;
    }
    // A client speaks only for its own socket: any "uid" or "user" it sends is ignored.
    const std::string& uid = socket.uid();
    // Not input.value("type", ""): it throws on a non-string type, and {"type":1} closed the
    // sender's socket with 1011 and logged an error per message (found by tests/fuzz).
    auto type_field = input.find("type");
    std::string type = type_field != input.end() && type_field->is_string() ? type_field->get<std::string>() : "";

    if (type == "req:connected") {
      dog::Json connected = dog::Json({{"type", "user:connected"}, {"from", uid}, {"time", now_ms()}}).dump();
      co_await socket.broadcast(connected, true);
    } else if (type == "req:user:list") {
      dog::Json ask = {{"type", "intra:user:list"}};
      auto results = co_await gossip(ask);
      std::set<std::string> all;
      for (auto& r : results)
        if (r.value && r.value->is_array())
          for (auto& u : *r.value)
            if (u.is_string()) all.insert(u.get<std::string>());
      for (auto& [u, t] : users) all.insert(u);
      socket.send({{"type", "user:list"}, {"list", all}, {"time", now_ms()}});
    } else if (type == "msg") {
      if (!input.contains("text") || !input["text"].is_string()) {
        socket.send({{"type", "error"}, {"error", "msg needs a text field"}});
        co_return;
      }
      // Parsed by hand: a regex on client text recursed per character and crashed the node.
      auto cmd = dog_chat::parse_command(input["text"].get<std::string>());
      dog::Json output = {{"type", "user:msg"}, {"from", socket.uid()}, {"text", cmd.text}, {"time", now_ms()}};
      if (cmd.kind == dog_chat::Command::Kind::kGroup) {
        output["meta"] = "group";
        socket.emit(output, true);
      } else if (cmd.kind == dog_chat::Command::Kind::kWhisper) {
        output["meta"] = "whisper";
        output["to"] = cmd.target;
        co_await socket.whisper(cmd.target, output);
        socket.send(output.dump());
      } else {
        co_await socket.broadcast(output, true);
      }
    } else if (type.empty()) {
      socket.send({{"type", "error"}, {"error", "message has no type"}});
    } else {
      // DOG relays unknown types to everyone; dog answers the sender with a clear error instead,
      // so a typo or a hostile client cannot make every socket receive arbitrary payloads.
      socket.send({{"type", "error"}, {"error", "unknown message type: " + type}});
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  dog::App app;
  int limit = 2;
  app.cli().add_option("--limit", limit, "most connections per Room replica")->capture_default_str();
  app.add_group("LOBBY", [&limit] {
    auto lobby = std::make_shared<Lobby>();
    lobby->limit = limit;
    return lobby;
  });
  app.replica<Room>("ROOM");
  app.fetch([](dog::Request& req, dog::Env& env) -> dog::Task<dog::Response> {
    if (req.method != "GET" && req.method != "HEAD") co_return dog::Response::method_not_allowed("GET, HEAD");
    if (req.path() == "/") co_return dog::Response::html(std::string(dog_chat::kPage));
    if (req.path() == "/favicon.ico") co_return dog::Response::text(404, "");
    auto u = req.query_param("u");
    if (u && u->empty()) co_return dog::Response::text(400, "the u parameter (your name) must not be empty");
    // The page sends encodeURIComponent(name); decode it so "J%C3%B6rg" is "Jörg".
    auto name = dog_chat::percent_decode(u.value_or("anon"));
    if (!name) co_return dog::Response::text(400, "the u parameter must be percent-encoded text without control characters");
    std::string reqid = std::move(*name);  // identify() rejects ids over 256 bytes with a 400
    auto gid = env["LOBBY"].id_from_name("lobby-id");
    auto room = co_await dog::identify(gid, reqid, {env["LOBBY"], env["ROOM"]});
    co_return co_await room.fetch(req);
  });
  return app.run(argc, argv);
}
