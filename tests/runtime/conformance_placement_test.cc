// DOG conformance, dog-semantics §7 items 1-24 (placement, counting, routing and errors),
// adjusted for dog's documented fixes (docs/semantics.md).
#include "harness.h"

using namespace dog;
using dog::test::World;

TEST_CASE("conformance 01: the first identify creates a Replica and returns its stub", "[dog]") {
  World w(2);
  auto stub = w.identify("A");
  CHECK(w.core().replicas() == std::vector<std::string>{stub.id().hex()});
  CHECK(w.core().count(stub.id().hex()) == 1);
  CHECK(w.core().mapping("A") == stub.id().hex());
  CHECK(w.rt->replica_count(w.room()) == 1);
}

TEST_CASE("conformance 02-03: with limit 2 every third distinct request id opens a Replica", "[dog]") {
  World w(2);
  auto a = w.identify("A"), b = w.identify("B"), c = w.identify("C"), d = w.identify("D"), e = w.identify("E");
  CHECK(a.id() == b.id());
  CHECK(c.id() != a.id());
  CHECK(d.id() == c.id());
  CHECK(e.id() != a.id());
  CHECK(e.id() != c.id());
  CHECK(w.core().replicas().size() == 3);
}

TEST_CASE("conformance 04: identifying the same request id twice takes two slots", "[dog]") {
  World w(2);
  auto a1 = w.identify("A"), a2 = w.identify("A"), x = w.identify("X");
  CHECK(a1.id() == a2.id());
  CHECK(w.core().count(a1.id().hex()) == 2);
  CHECK(x.id() != a1.id());
}

TEST_CASE("conformance 05: a known request id returns to its Replica while it has room", "[dog]") {
  World w(3);
  auto a = w.identify("A");  // R1: 1
  w.identify("B");           // R1: 2
  w.identify("C");           // R1: 3 (full)
  auto r2 = w.identify("D");  // R2: 1
  CHECK(r2.id() != a.id());
  // Free one slot on R1 (B leaves, keeping A known), then A comes back to R1 though R2 is emptier.
  w.core().close(a.id().hex(), "B", true, 3);  // R1: 2, R2: 1 (emptier, and now sticky)
  REQUIRE(w.core().current() == r2.id().hex());
  auto again = w.identify("A");
  CHECK(again.id() == a.id());
}

TEST_CASE("conformance 06: a known request id whose Replica is full goes to the least loaded, ties to the oldest", "[dog]") {
  {
    World w(2);
    auto a = w.identify("A");   // R1:1
    w.identify("B");            // R1:2
    auto c = w.identify("C");   // R2:1
    auto a2 = w.identify("A");  // R1 full -> least loaded with room: R2
    CHECK(a2.id() == c.id());
    CHECK(w.core().mapping("A") == c.id().hex());
    CHECK(w.core().count(c.id().hex()) == 2);
  }  // one Loop per thread: the next World starts after this one is gone
  // Ties: A's Replica is full and R2, R3 both have one free slot: the earlier one wins.
  World t(2);
  auto r1 = t.identify("A");
  t.identify("B");
  auto r2 = t.identify("C");
  t.identify("D");
  auto r3 = t.identify("E");
  t.identify("F");
  REQUIRE(r3.id() != r2.id());
  t.core().close(r3.id().hex(), "F", true, 2);
  t.core().close(r2.id().hex(), "D", true, 2);  // R2:1 R3:1
  auto pick = t.identify("A");                   // mapped to R1, which is full
  CHECK(pick.id() == r2.id());
  (void)r1;
}

TEST_CASE("conformance 07: a known request id with every Replica full gets a new Replica", "[dog]") {
  World w(1);
  auto a = w.identify("A");
  auto a2 = w.identify("A");
  CHECK(a2.id() != a.id());
  CHECK(w.core().mapping("A") == a2.id().hex());
}

TEST_CASE("conformance 08: placement is sticky fill-first", "[dog]") {
  World w(3);
  auto a = w.identify("A");
  auto b = w.identify("B");
  CHECK(b.id() == a.id());
  CHECK(w.core().current() == a.id().hex());
}

TEST_CASE("conformance 09: after a close the least loaded Replica with room becomes sticky", "[dog]") {
  World w(2);
  auto r1 = w.identify("A");
  w.identify("B");
  auto r2 = w.identify("C");
  w.identify("D");
  w.core().close(r2.id().hex(), "D", true, 2);  // R1:2 R2:1
  CHECK(w.core().current() == r2.id().hex());
  CHECK(w.identify("E").id() == r2.id());
  (void)r1;
}

TEST_CASE("conformance 10: a plain HTTP request frees its slot before the caller sees the response", "[dog]") {
  World w(1);
  for (int i = 0; i < 5; ++i) {
    auto res = w.http("user" + std::to_string(i));
    CHECK(res.status == 200);
  }
  CHECK(w.core().replicas().size() == 1);
  CHECK(w.core().count(w.core().replicas()[0]) == 0);
}

TEST_CASE("conformance 11: a WebSocket keeps its slot until it closes", "[dog]") {
  World w(1);
  auto a = w.connect("A");
  auto b = w.connect("B");
  CHECK(a.replica != b.replica);
  CHECK(w.core().count(a.replica) == 1);
  w.hang_up(a);
  CHECK(w.core().count(a.replica) == 0);
}

TEST_CASE("conformance 12: a failed upgrade frees its slot", "[dog]") {
  World w(1);
  auto post = World::ws_request("/ws");
  post.method = "POST";
  auto not_ws = World::ws_request("/ws");
  not_ws.headers.set("Upgrade", "h2c");
  auto bad_key = World::ws_request("/ws");
  bad_key.headers.set("Sec-WebSocket-Key", "short");
  for (auto* req : {&post, &not_ws, &bad_key}) {
    auto res = w.run([](World* w, Request* r) -> Task<Response> {
      auto stub = co_await dog::identify(w->gid(), "A", {w->lobby(), w->room()});
      co_return co_await stub.fetch(*r);
    }(&w, req));
    CHECK(res.status >= 400);
  }
  CHECK(w.core().replicas().size() == 1);
  CHECK(w.core().count(w.core().replicas()[0]) == 0);
}

TEST_CASE("conformance 13: an exception in receive gives 500 and frees the slot", "[dog]") {
  World w(1);
  auto res = w.http("A", "/throw");
  CHECK(res.status == 500);  // DOG: 400 with a stack; dog: 500 and no stack (fix 7)
  CHECK(res.body.find("receive bug") == std::string::npos);
  CHECK(w.core().count(w.core().replicas()[0]) == 0);
}

TEST_CASE("conformance 14: a count never goes below zero", "[dog]") {
  World w(2);
  auto a = w.identify("A");
  for (int i = 0; i < 3; ++i) w.core().close(a.id().hex(), "A", false, 2);
  CHECK(w.core().count(a.id().hex()) == 0);
}

TEST_CASE("conformance 15-16: empty releases forget the mapping, partial ones keep it", "[dog]") {
  World w(3);
  auto s1 = w.connect("A");
  auto s2 = w.connect("A");
  REQUIRE(s1.replica == s2.replica);
  w.hang_up(s1);  // A still has a socket here: ISEMPTY=0
  CHECK(w.core().mapping("A") == s1.replica);
  w.hang_up(s2);  // last socket: ISEMPTY=1
  CHECK_FALSE(w.core().mapping("A").has_value());
}

TEST_CASE("conformance 17: an HTTP request forgets the mapping of a request id with an open socket", "[dog]") {
  World w(3);
  auto s = w.connect("A");
  CHECK(w.core().mapping("A") == s.replica);
  w.http("A");
  CHECK_FALSE(w.core().mapping("A").has_value());
}

TEST_CASE("conformance 18: an async clusterize override chooses the id, given the identify request", "[dog]") {
  World w(1);
  std::string seen_path, seen_client;
  ObjectId chosen = w.room().id_from_name("custom-replica");
  w.cluster = [&](Request& req, Namespace&) -> Task<ObjectId> {
    seen_path = std::string(req.path());
    seen_client = std::string(req.headers.get("x-dog-client-identifier").value_or(""));
    asio::steady_timer t(w.loop.io(), std::chrono::milliseconds(1));
    co_await t.async_wait(asio::use_awaitable);  // a real suspension
    co_return chosen;
  };
  bool done = false;
  Stub stub;
  asio::co_spawn(w.loop.io(), dog::identify(w.gid(), "A", {w.lobby(), w.room()}),
                 [&](std::exception_ptr, Stub s) { stub = s; done = true; });
  for (int i = 0; i < 200 && !done; ++i) {
    w.loop.io().restart();
    w.loop.io().run_one_for(std::chrono::milliseconds(10));
  }
  REQUIRE(done);
  CHECK(stub.id() == chosen);
  CHECK(seen_path == "/~$~/identify");
  CHECK(seen_client == "A");
}

TEST_CASE("conformance 18b: a clusterize returning an id of another namespace is an error, not a Replica", "[dog]") {
  World w(1);
  w.cluster = [&](Request&, Namespace&) -> Task<ObjectId> { co_return w.lobby().new_unique_id(); };
  CHECK_THROWS_WITH(w.identify("A"), Catch::Contains("clusterize returned a bad id"));
  CHECK(w.rt->replica_count(w.room()) == 0);
  // The Group's identify lock was released: the next identify works.
  w.cluster = nullptr;
  CHECK_NOTHROW(w.identify("A"));
}

TEST_CASE("conformance 19: limit 0 or below creates a Replica on every identify", "[dog]") {
  for (int limit : {0, -1}) {
    World w(limit);
    auto a = w.identify("A"), b = w.identify("A"), c = w.identify("B");
    CHECK(a.id() != b.id());
    CHECK(b.id() != c.id());
    CHECK(w.core().replicas().size() == 3);
  }
}

TEST_CASE("conformance 20: identify rejects an empty or oversized request id", "[dog]") {
  World w(2);
  CHECK_THROWS_WITH(w.identify(""), "Missing: Request ID");
  CHECK_THROWS_WITH(w.identify(std::string(300, 'x')), Catch::Contains("longer than 256"));
  CHECK_NOTHROW(w.identify(std::string(256, 'x')));
}

TEST_CASE("conformance 21: releasing a slot of an unknown Replica or Group is refused", "[dog]") {
  World w(2);
  auto a = w.identify("A");
  using CR = runtime::GroupCore::CloseResult;
  CHECK(w.rt->group_close(w.lobby(), w.gid().hex(), "not-a-replica", "A", true) == CR::kUnknownReplica);
  CHECK(w.rt->group_close(w.lobby(), w.lobby().id_from_name("other").hex(), a.id().hex(), "A", true) == CR::kUnknownReplica);
  CHECK(w.rt->group_close(w.lobby(), w.gid().hex(), a.id().hex(), "A", true) == CR::kOk);
}

TEST_CASE("conformance 22-23: requests to a Group go to receive, 404 by default", "[dog]") {
  World w(2);
  auto req = World::make_request("GET", "/anything");
  auto res = w.run([](World* w, Request* r) -> Task<Response> {
    auto stub = w->lobby().get(w->gid());
    co_return co_await stub.fetch(*r);
  }(&w, &req));
  CHECK(res.status == 404);
  CHECK(res.body == "Not Found");
  CHECK(res.headers.get("Content-Type") == std::optional<std::string_view>("text/plain; charset=utf-8"));
  CHECK(res.headers.get("Connection") == std::optional<std::string_view>("close"));
  w.group_overrides_receive = true;
  // Even DOG's internal paths are ordinary paths here (fix 4).
  auto internal = World::make_request("GET", "/~$~/identify");
  auto res2 = w.run([](World* w, Request* r) -> Task<Response> {
    auto stub = w->lobby().get(w->gid());
    co_return co_await stub.fetch(*r);
  }(&w, &internal));
  CHECK(res2.body == "group receive /~$~/identify");
}

TEST_CASE("conformance 24: a Replica rejects requests without or with the wrong replica header", "[dog]") {
  World w(2);
  auto id = w.room().new_unique_id();
  auto bare = World::make_request("GET", "/x");
  auto res = w.run([](World* w, ObjectId id, Request* r) -> Task<Response> {
    auto stub = w->room().get(id);
    co_return co_await stub.fetch(*r);
  }(&w, id, &bare));
  CHECK(res.status == 400);
  CHECK(res.body == "Missing: Replica ID");
  auto wrong = World::make_request("GET", "/x");
  wrong.headers.set("x-dog-replica-identifier", "someone-else");
  auto res2 = w.run([](World* w, ObjectId id, Request* r) -> Task<Response> {
    auto stub = w->room().get(id);
    co_return co_await stub.fetch(*r);
  }(&w, id, &wrong));
  CHECK(res2.body == "Mismatch: Replica ID");
  CHECK(w.log.receive_paths.empty());
}

TEST_CASE("fix 5: an identify slot whose stub is never fetched is released after the claim timeout", "[dog][fix]") {
  RuntimeConfig cfg;
  cfg.identify_claim_timeout = std::chrono::milliseconds(30);
  World w(1, cfg);
  auto a = w.identify("A");
  CHECK(w.core().count(a.id().hex()) == 1);
  for (int i = 0; i < 100 && w.core().count(a.id().hex()) != 0; ++i) {
    w.loop.io().restart();
    w.loop.io().run_one_for(std::chrono::milliseconds(10));
  }
  CHECK(w.core().count(a.id().hex()) == 0);
  // The freed slot is reused instead of a new Replica.
  CHECK(w.identify("B").id() == a.id());
}

TEST_CASE("fix 5b: a fetched stub's slot is not released by the claim timer", "[dog][fix]") {
  RuntimeConfig cfg;
  cfg.identify_claim_timeout = std::chrono::milliseconds(20);
  World w(2, cfg);
  auto c = w.connect("A");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(80);
  while (std::chrono::steady_clock::now() < deadline) {
    w.loop.io().restart();
    w.loop.io().run_one_for(std::chrono::milliseconds(10));
  }
  CHECK(w.core().count(c.replica) == 1);
}

TEST_CASE("fix 3: an idle Replica is evicted and leaves its Group and its peers", "[dog][fix]") {
  World w(1);
  auto a = w.connect("A");
  auto b = w.connect("B");
  REQUIRE(w.neighbors(a.replica) == std::vector<std::string>{b.replica});
  w.hang_up(b);
  CHECK(w.rt->evict_all_idle() == 1);
  CHECK(w.core().replicas() == std::vector<std::string>{a.replica});
  CHECK(w.neighbors(a.replica).empty());
  CHECK(w.rt->peer(w.room(), b.replica) == nullptr);
  // A Replica with a live socket is never evicted.
  CHECK(w.rt->evict_all_idle() == 0);
}

TEST_CASE("fix 3b: the idle timer evicts on its own", "[dog][fix]") {
  RuntimeConfig cfg;
  cfg.replica_idle_timeout = std::chrono::milliseconds(20);
  World w(1, cfg);
  auto res = w.http("A");
  REQUIRE(res.status == 200);
  REQUIRE(w.rt->replica_count(w.room()) == 1);
  for (int i = 0; i < 100 && w.rt->replica_count(w.room()) != 0; ++i) {
    w.loop.io().restart();
    w.loop.io().run_one_for(std::chrono::milliseconds(10));
  }
  CHECK(w.rt->replica_count(w.room()) == 0);
  CHECK(w.rt->group_count(w.lobby()) == 0);  // and its Group, now empty, went with it
}

TEST_CASE("fix 3c: client-chosen group names do not grow memory without bound", "[dog][fix]") {
  World w(2);
  // Requests to 100 differently named Groups, through their stubs and through identify.
  for (int i = 0; i < 100; ++i) {
    auto gid = w.lobby().id_from_name("group-" + std::to_string(i));
    auto req = World::make_request("GET", "/x");
    auto res = w.run([](World* w, ObjectId gid, Request* r) -> Task<Response> {
      auto stub = w->lobby().get(gid);
      co_return co_await stub.fetch(*r);
    }(&w, gid, &req));
    CHECK(res.status == 404);
    auto req2 = World::make_request("GET", "/y");
    auto res2 = w.run([](World* w, ObjectId gid, Request* r) -> Task<Response> {
      auto stub = co_await dog::identify(gid, "u", {w->lobby(), w->room()});
      co_return co_await stub.fetch(*r);
    }(&w, gid, &req2));
    CHECK(res2.status == 200);
  }
  CHECK(w.rt->group_count(w.lobby()) == 100);  // each still holds its (idle) Replica
  CHECK(w.rt->evict_all_idle() == 100);
  CHECK(w.rt->group_count(w.lobby()) == 0);
  CHECK(w.rt->replica_count(w.room()) == 0);
}

TEST_CASE("namespaces: ids are deterministic by name, unique otherwise, and bound to their namespace", "[dog]") {
  World w(2);
  CHECK(w.room().id_from_name("x") == w.room().id_from_name("x"));
  CHECK(w.room().id_from_name("x") != w.lobby().id_from_name("x"));
  CHECK(w.room().new_unique_id() != w.room().new_unique_id());
  auto id = w.room().new_unique_id();
  CHECK(w.room().id_from_string(id.to_string()) == id);
  CHECK(id.to_string().size() == 64);
  CHECK_THROWS_AS(w.lobby().id_from_string(id.to_string()), BadId);
  CHECK_THROWS_WITH(w.room().id_from_string("zz"), Catch::Contains("invalid id for namespace ROOM"));
  std::string err;
  CHECK_FALSE(w.room().parse_id(std::string(64, 'g'), &err));
  CHECK_FALSE(err.empty());
}
