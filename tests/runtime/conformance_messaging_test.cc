// DOG conformance, dog-semantics §7 items 25-54 (requests, sockets, delivery, introductions,
// gossip), adjusted for dog's documented fixes (docs/semantics.md).
#include "harness.h"

#include <algorithm>

using namespace dog;
using dog::test::Client;
using dog::test::World;

TEST_CASE("conformance 25-26: a request reaches receive with its URL, method and the x-dog headers set by the stub", "[dog]") {
  World w(2);
  auto req = World::make_request("POST", "/path?q=1");
  req.headers.add("x-dog-client-identifier", "forged");
  req.headers.add("x-dog-group-identifier", "forged");
  req.headers.add("x-dog-target-identifier", "kept");
  std::string replica;
  auto res = w.run([](World* w, Request* r, std::string* uid) -> Task<Response> {
    auto stub = co_await dog::identify(w->gid(), "alice", {w->lobby(), w->room()});
    *uid = stub.id().hex();
    co_return co_await stub.fetch(*r);
  }(&w, &req, &replica));
  CHECK(res.body == "ok /path");
  CHECK(w.log.last_method == "POST");
  CHECK(w.log.receive_headers["x-dog-client-identifier"] == "alice");
  CHECK(w.log.receive_headers["x-dog-replica-identifier"] == replica);
  CHECK(w.log.receive_headers["x-dog-group-identifier"] == w.gid().hex());
  CHECK(w.log.receive_headers["x-dog-target-identifier"] == "kept");
}

TEST_CASE("conformance 27: connect validates the upgrade like DOG", "[dog]") {
  World w(5);
  auto try_upgrade = [&](Request req) {
    return w.run([](World* w, Request* r) -> Task<Response> {
      auto stub = co_await dog::identify(w->gid(), "A", {w->lobby(), w->room()});
      co_return co_await stub.fetch(*r);
    }(&w, &req));
  };
  auto post = World::ws_request("/ws");
  post.method = "POST";
  CHECK(try_upgrade(post).status == 405);
  auto none = World::make_request("GET", "/ws");
  CHECK(try_upgrade(none).status == 426);
  auto post_res = try_upgrade(post);
  CHECK(post_res.headers.get("Allow") == std::optional<std::string_view>("GET"));
  // Fix over DOG (RFC 9110): the Upgrade token is case-insensitive.
  auto mixed = World::ws_request("/ws");
  mixed.headers.set("Upgrade", "WebSocket");
  CHECK(try_upgrade(mixed).status == 101);
  auto key = World::ws_request("/ws");
  key.headers.set("Sec-WebSocket-Key", "not a key");
  CHECK(try_upgrade(key).status == 400);
  auto version = World::ws_request("/ws");
  version.headers.set("Sec-WebSocket-Version", "8");
  CHECK(try_upgrade(version).status == 400);
  auto ok = try_upgrade(World::ws_request("/ws"));
  CHECK(ok.status == 101);
  CHECK(ok.websocket != nullptr);
}

TEST_CASE("conformance 28: onopen runs before the 101 and the new socket is not yet a recipient", "[dog]") {
  World w(5);
  auto a = w.connect("A");
  w.on_open = [&](Socket& s) -> Task<void> {
    s.emit("emit-during-open", true);  // would include the new socket if it were pooled
    s.send("hello-from-onopen");       // queued, sent right after the 101
    co_return;
  };
  auto b = w.connect("B");
  CHECK(a.ws->received("emit-during-open"));
  CHECK_FALSE(b.ws->received("emit-during-open"));
  REQUIRE_FALSE(b.ws->got.empty());
  CHECK(b.ws->got.front() == "hello-from-onopen");
}

TEST_CASE("conformance 29: onmessage gets text frames and socket.uid is the request id", "[dog]") {
  World w(2);
  auto a = w.connect("alice");
  w.say(a, "just text");
  CHECK(w.log.has("msg:alice:just text"));
}

TEST_CASE("conformance 30: on close, onclose runs with the socket still pooled, then the slot is released", "[dog]") {
  World w(2);
  auto a = w.connect("A");
  REQUIRE(w.core().count(a.replica) == 1);
  w.hang_up(a);
  CHECK(w.log.has("close:A:1"));  // connections() counted the closing socket
  CHECK(w.core().count(a.replica) == 0);
}

TEST_CASE("conformance 31: an error runs onerror if defined, else onclose", "[dog]") {
  {
    World w(2);
    auto a = w.connect("A");
    w.hang_up(a, 1006);
    CHECK(w.log.has("close:A:1"));
  }
  {
    World w(2);
    w.room_has_onerror = true;
    auto a = w.connect("A");
    w.hang_up(a, 1006);
    CHECK(w.log.has("error:A"));
    CHECK_FALSE(w.log.has("close:A:1"));
  }
}

TEST_CASE("conformance 32: closing the socket inside onclose is harmless", "[dog]") {
  World w(2);
  w.on_close = [](Socket& s) -> Task<void> {
    s.close(1012, "again");
    s.close(1000, "and again");
    co_return;
  };
  auto a = w.connect("A");
  w.hang_up(a);
  CHECK(w.core().count(a.replica) == 0);
}

// Three users on R1 (A, A', B) and two on R2 (A'', C) with limit 3.
struct Mesh {
  World w{3};
  Client a1, a2, b, a3, c;
  Mesh() {
    a1 = w.connect("A");
    a2 = w.connect("A");
    b = w.connect("B");
    c = w.connect("C");   // R1 is full: R2
    a3 = w.connect("A");  // A's Replica is full: R2
    REQUIRE(a1.replica == b.replica);
    REQUIRE(a3.replica == c.replica);
    REQUIRE(a1.replica != c.replica);
  }
  std::vector<Client*> all() { return {&a1, &a2, &b, &a3, &c}; }
};

TEST_CASE("conformance 33-34: emit stays on the Replica and skips the sender unless self", "[dog]") {
  Mesh m;
  m.w.say(m.a1, "emit:e1");
  CHECK_FALSE(m.a1.ws->received("e1"));
  CHECK_FALSE(m.a2.ws->received("e1"));  // every socket of the sender's request id is skipped
  CHECK(m.b.ws->received("e1"));
  CHECK_FALSE(m.c.ws->received("e1"));
  CHECK_FALSE(m.a3.ws->received("e1"));
  m.w.say(m.a1, "emit-self:e2");
  CHECK(m.a1.ws->received("e2"));
  CHECK(m.a2.ws->received("e2"));
  CHECK(m.b.ws->received("e2"));
  CHECK_FALSE(m.a3.ws->received("e2"));
}

TEST_CASE("conformance 35: broadcast reaches every request id but the sender, on every Replica", "[dog]") {
  Mesh m;
  m.w.say(m.a1, "bcast:b1");
  CHECK(m.b.ws->received("b1"));
  CHECK(m.c.ws->received("b1"));
  CHECK_FALSE(m.a1.ws->received("b1"));
  CHECK_FALSE(m.a2.ws->received("b1"));
  CHECK_FALSE(m.a3.ws->received("b1"));
}

TEST_CASE("conformance 36 (fix 1): broadcast with self reaches all of the sender's sockets in the group", "[dog][fix]") {
  Mesh m;
  m.w.say(m.a1, "bcast-self:b2");
  for (auto* cl : m.all()) {
    INFO(cl->rid << " on " << cl->replica.substr(0, 8));
    CHECK(cl->ws->received("b2"));  // DOG misses a3 (A's socket on the other Replica)
  }
}

TEST_CASE("conformance 37: objects are sent as JSON, strings unchanged, the same bytes everywhere", "[dog]") {
  Mesh m;
  m.w.say(m.b, "json");
  std::string expected = Json({{"a", 1}, {"b", "two"}}).dump();
  CHECK(m.b.ws->received(expected));
  CHECK(m.c.ws->received(expected));
  m.w.say(m.b, "bcast:{\"not\":\"parsed\"}");
  CHECK(m.c.ws->received("{\"not\":\"parsed\"}"));
}

TEST_CASE("conformance 38-39 (fix 2): whisper reaches every socket of the target in the group", "[dog][fix]") {
  Mesh m;
  m.w.say(m.b, "whisper:A:w1");  // A is local to B and also on R2
  CHECK(m.a1.ws->received("w1"));
  CHECK(m.a2.ws->received("w1"));
  CHECK(m.a3.ws->received("w1"));  // DOG stops at the local hit
  CHECK_FALSE(m.b.ws->received("w1"));
  CHECK_FALSE(m.c.ws->received("w1"));
  m.w.say(m.b, "whisper:C:w2");  // C is remote only
  CHECK(m.c.ws->received("w2"));
  CHECK_FALSE(m.a3.ws->received("w2"));
}

TEST_CASE("conformance 40-41: whisper to an unknown id or to yourself delivers nothing", "[dog]") {
  Mesh m;
  m.w.say(m.b, "whisper:nobody:w3");
  m.w.say(m.a1, "whisper:A:w4");
  for (auto* cl : m.all()) {
    CHECK_FALSE(cl->ws->received("w3"));
    CHECK_FALSE(cl->ws->received("w4"));
  }
}

TEST_CASE("conformance 42-44: the Replica's HTTP senders", "[dog]") {
  Mesh m;
  // An HTTP request for a new request id lands on a Replica with room: R2 here (it has room 1).
  auto on = [&](const std::string& path) {
    return m.w.run([](World* w, std::string rid, std::string p) -> Task<Response> {
      auto stub = co_await dog::identify(w->gid(), rid, {w->lobby(), w->room()});
      auto req = World::make_request("GET", p);
      co_return co_await stub.fetch(req);
    }(&m.w, "http-user", path));
  };
  CHECK(on("/h/emit?m=he").body == "DONE");
  std::string where;
  for (auto* cl : m.all())
    if (cl->ws->received("he")) where += cl->rid;
  CHECK((where == "AC" || where == "AAB"));  // every local socket of one Replica
  on("/h/broadcast?m=hb");
  for (auto* cl : m.all()) CHECK(cl->ws->received("hb"));
  on("/h/whisper?target=A&m=hw");
  CHECK(m.a1.ws->received("hw"));
  CHECK(m.a3.ws->received("hw"));
  CHECK_FALSE(m.b.ws->received("hw"));
}

TEST_CASE("conformance 45: a lone Replica broadcasts locally and gossips to no one", "[dog]") {
  World w(5);
  auto a = w.connect("A");
  auto b = w.connect("B");
  w.say(a, "bcast:solo");
  CHECK(b.ws->received("solo"));
  auto results = w.run(w.replica(a.replica)->gossip(Json{{"q", 1}}));
  CHECK(results.empty());
  CHECK_FALSE(w.log.has("gossip:" + a.replica));
}

TEST_CASE("fix 4: DOG's internal paths are ordinary user paths", "[dog][fix]") {
  World w(5);
  auto a = w.connect("A");
  for (std::string p : {"/~$~/message", "/~$~/whisper", "/~$~/jello", "/~$~/gossip"}) {
    auto res = w.http("intruder", p, "POST");
    CHECK(res.body == "ok " + p);
  }
  CHECK(a.ws->got.empty());  // nothing was broadcast or whispered
  CHECK(w.neighbors(a.replica).empty());  // and no fake neighbor was added
}

TEST_CASE("conformance 47-49 (fix 8): new Replicas are introduced both ways before identify returns", "[dog][fix]") {
  World w(1);
  auto a = w.connect("A");
  // Identify alone (no settling of background work in between) already yields a full mesh.
  auto r2 = w.identify("B");
  CHECK(w.neighbors(a.replica) == std::vector<std::string>{r2.id().hex()});
  CHECK(w.neighbors(r2.id().hex()) == std::vector<std::string>{a.replica});
  auto r3 = w.identify("C");
  auto n1 = w.neighbors(a.replica), n3 = w.neighbors(r3.id().hex());
  CHECK(n1.size() == 2);
  CHECK(n3.size() == 2);
  CHECK(std::count(n3.begin(), n3.end(), a.replica) == 1);
  CHECK(w.rt->group_of(w.room(), r3.id().hex()) == w.gid().hex());
}

TEST_CASE("conformance 50-51: gossip returns one answer per peer, parsed, without asking the sender", "[dog]") {
  World w(1);
  auto a = w.connect("A");
  auto b = w.connect("B");
  auto c = w.connect("C");
  Json msg = {{"type", "ask"}, {"n", 7}};
  auto results = w.run(w.replica(a.replica)->gossip(msg));
  REQUIRE(results.size() == 2);
  std::vector<std::string> from;
  for (auto& r : results) {
    REQUIRE(r.ok());
    CHECK((*r.value)["echo"] == msg);
    from.push_back((*r.value)["from"]);
  }
  std::sort(from.begin(), from.end());
  std::vector<std::string> expect = {b.replica, c.replica};
  std::sort(expect.begin(), expect.end());
  CHECK(from == expect);
  CHECK_FALSE(w.log.has("gossip:" + a.replica));
}

TEST_CASE("conformance 52-53 (fix 6): a failing, missing or null peer is one result, not a failed call", "[dog][fix]") {
  World w(1);
  auto a = w.connect("A");
  auto b = w.connect("B");
  auto c = w.connect("C");
  auto d = w.connect("D");
  auto e = w.connect("E");
  w.gossip_mode[b.replica] = "throw";
  w.gossip_mode[c.replica] = "missing";
  w.gossip_mode[d.replica] = "null";
  auto results = w.run(w.replica(a.replica)->gossip(Json{{"q", 1}}));
  REQUIRE(results.size() == 4);
  std::map<std::string, GossipResult> by;
  for (auto& r : results) by[r.peer] = r;
  CHECK(by[b.replica].error == "gossip bug");
  CHECK(by[c.replica].error.find("ongossip") != std::string::npos);
  REQUIRE(by[d.replica].ok());
  CHECK(by[d.replica].value->is_null());
  CHECK(by[e.replica].ok());
}

TEST_CASE("fix 6b: gossip answers within its deadline, marking slow peers as timed out", "[dog][fix]") {
  World w(1);
  auto a = w.connect("A");
  auto b = w.connect("B");
  auto c = w.connect("C");
  w.gossip_mode[b.replica] = "slow";  // answers after 300 ms
  std::optional<std::vector<GossipResult>> results;
  auto start = std::chrono::steady_clock::now();
  asio::co_spawn(w.loop.io(), w.replica(a.replica)->gossip(Json{{"q", 1}}, std::chrono::milliseconds(50)),
                 [&](std::exception_ptr, std::vector<GossipResult> r) { results = std::move(r); });
  for (int i = 0; i < 200 && !results; ++i) {
    w.loop.io().restart();
    w.loop.io().run_one_for(std::chrono::milliseconds(10));
  }
  REQUIRE(results);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(250));
  std::map<std::string, GossipResult> by;
  for (auto& r : *results) by[r.peer] = r;
  CHECK(by[b.replica].error == "timeout");
  CHECK(by[c.replica].ok());
  // Let the slow answer land after the deadline: it must not crash or change the result.
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(350);
  while (std::chrono::steady_clock::now() < until) {
    w.loop.io().restart();
    w.loop.io().run_one_for(std::chrono::milliseconds(20));
  }
  CHECK(by[b.replica].error == "timeout");
}

TEST_CASE("fix 7: a throwing onmessage closes that socket with 1011 and nothing else", "[dog][fix]") {
  World w(5);
  auto a = w.connect("A");
  auto b = w.connect("B");
  w.say(a, "throw");
  CHECK_FALSE(a.ws->open);
  CHECK(a.ws->close_code == 1011);
  CHECK(b.ws->open);
  w.say(b, "emit-self:still");
  CHECK(b.ws->received("still"));
}

TEST_CASE("socket close from a hook reaches the client with its code", "[dog]") {
  World w(5);
  auto a = w.connect("A");
  w.say(a, "close");
  CHECK_FALSE(a.ws->open);
  CHECK(a.ws->close_code == 4001);
}

TEST_CASE("a client faster than its onmessage hook is paused, not buffered without bound", "[dog][flow]") {
  World w(5);
  auto a = w.connect("A");
  // 200 messages arrive at once; each hook waits 20 ms. Without flow control all 200 would be
  // in flight together.
  for (int i = 0; i < 200; ++i) a.handler->on_message(a.ws, "slow", true);
  CHECK(a.ws->paused);  // reading stopped at 64 unfinished hooks
  for (int i = 0; i < 300 && std::count(w.log.events.begin(), w.log.events.end(), "slow-done") < 200; ++i) {
    w.loop.io().restart();
    w.loop.io().run_for(std::chrono::milliseconds(10));
  }
  CHECK(std::count(w.log.events.begin(), w.log.events.end(), "slow-done") == 200);
  CHECK_FALSE(a.ws->paused);  // and resumed once the hooks caught up
}

TEST_CASE("sends queued inside onopen are bounded", "[dog][flow]") {
  World w(5);
  w.on_open = [](Socket& s) -> Task<void> {
    for (int i = 0; i < 1100; ++i) s.send("early " + std::to_string(i));
    co_return;
  };
  auto a = w.connect("A");
  CHECK(a.ws->got.size() == 1024);
  CHECK(a.ws->close_code == 1008);
}
