// Issue 11's "fix on the way" items, on one node: each test fails without its fix.
#include "tests/runtime/harness.h"

namespace dog::test {

TEST_CASE("fix 11a: a stub dropped without a fetch still gives its slot back at the claim timeout", "[dog][fix]") {
  RuntimeConfig cfg;
  cfg.identify_claim_timeout = std::chrono::milliseconds(20);
  World w(2, cfg);
  std::string sid;
  {
    Stub s = w.identify("A");
    sid = s.id().hex();
    REQUIRE(w.core().count(sid) == 1);
  }  // dropped, never fetched
  CHECK(w.core().count(sid) == 1);  // DOG's rule: the slot stays reserved until the timeout...
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (w.core().count(sid) != 0 && std::chrono::steady_clock::now() < deadline) {
    w.loop.io().restart();
    w.loop.io().run_one_for(std::chrono::milliseconds(10));
  }
  CHECK(w.core().count(sid) == 0);  // ...and then it is given back
}

TEST_CASE("fix 11b: a request refused with 400 leaves no Replica behind", "[dog][fix]") {
  World w(2);
  auto stub = w.room().get(w.room().new_unique_id());  // no identify: no DOG headers
  Request req = World::make_request("GET", "/hello");
  auto res = w.run([](Stub* s, Request* r) -> Task<Response> { co_return co_await s->fetch(*r); }(&stub, &req));
  CHECK(res.status == 400);
  CHECK(w.rt->peer(w.room(), stub.id().hex()) == nullptr);
  CHECK(w.rt->replica_count(w.room()) == 0);
}

TEST_CASE("fix 11c: a throwing onopen closes the socket with 1011 instead of answering 500", "[dog][fix]") {
  World w(2);
  w.on_open = [](Socket&) -> Task<void> {
    throw std::runtime_error("onopen bug");
    co_return;
  };
  auto c = w.connect("A");  // REQUIREs the 101
  CHECK_FALSE(c.ws->open);
  CHECK(c.ws->close_code == 1011);
}

TEST_CASE("issue 12 item 10: live objects per namespace are capped, refused with 503 and counted", "[dog][fix]") {
  RuntimeConfig cfg;
  cfg.max_live_objects = 2;
  World w(1, cfg);  // limit 1: every connected user holds a Replica of its own
  auto a = w.connect("A");
  auto b = w.connect("B");  // two Replicas: the cap
  auto res = w.run([](World* w) -> Task<Response> {
    try {
      auto stub = co_await dog::identify(w->gid(), "C", {w->lobby(), w->room()});
      Request req = World::ws_request("/ws");
      co_return co_await stub.fetch(req);
    } catch (const HttpError& e) {
      co_return Response::text(e.status(), e.what());
    }
  }(&w));
  CHECK(res.status == 503);
  CHECK(w.rt->stats().objects_refused == 1);
  CHECK(w.rt->replica_count(w.room()) == 2);
  CHECK(w.core().replicas().size() == 2);  // the refused Replica took no slot in the Group
  // Room again once an object goes.
  w.hang_up(b);
  CHECK(w.rt->evict_all_idle() == 1);
  auto c = w.connect("C");
  CHECK(c.ws->open);
  (void)a;
}

TEST_CASE("issue 12 item 13: a client's close frame runs onclose whatever its code, an error runs onerror", "[dog][fix]") {
  for (uint16_t code : {1000, 1002, 1007, 1009, 1011, 4000}) {
    World w(2);
    w.room_has_onerror = true;
    auto a = w.connect("A");
    w.hang_up(a, code);  // the client sent a close frame with `code`
    INFO("close frame " << code);
    CHECK(w.log.has("close:A:1"));
    CHECK_FALSE(w.log.has("error:A"));
  }
  for (uint16_t code : {1002, 1007, 1009, 1006}) {
    World w(2);
    w.room_has_onerror = true;
    auto a = w.connect("A");
    a.ws->error_end = true;  // this side failed the connection (protocol error) or it broke
    w.hang_up(a, code);
    INFO("error end " << code);
    CHECK(w.log.has("error:A"));
    CHECK_FALSE(w.log.has("close:A:1"));
  }
}

TEST_CASE("issue 13: a broadcast is encoded once per node and shared by every recipient", "[dog][fanout]") {
  World w(2);
  auto a = w.connect("A");
  auto b = w.connect("B");
  auto c = w.connect("C");  // a second Replica: the cast crosses Replicas, still one encoding
  w.say(a, "bcast:hi");
  REQUIRE(b.ws->received("hi"));
  REQUIRE(c.ws->received("hi"));
  REQUIRE(!b.ws->shared.empty());
  REQUIRE(!c.ws->shared.empty());
  CHECK(b.ws->shared.back() == c.ws->shared.back());
}

TEST_CASE("issue 13: a publisher is held while a receiver is behind and released when it catches up", "[dog][fanout]") {
  World w(10);  // one Replica: A publishes, B and C receive
  auto a = w.connect("A");
  auto b = w.connect("B");
  auto c = w.connect("C");
  w.say(a, "bcast:1");
  CHECK_FALSE(a.ws->paused);  // nobody behind: the publisher keeps being read
  b.ws->backlog = http::kBacklogBytes + 1;
  w.say(a, "bcast:2");
  REQUIRE(b.ws->received("2"));
  CHECK(a.ws->paused);         // B is behind: A stops being read...
  CHECK_FALSE(c.ws->paused);   // ...and only A
  CHECK(w.rt->fanout().stats().pauses == 1);
  w.say(a, "bcast:3");         // already read: delivered, and the hook's own flow control
  CHECK(c.ws->received("3"));  // (in-flight count) must not resume a held publisher
  CHECK(a.ws->paused);
  w.say(c, "bcast:4");         // C publishes too: held as well
  CHECK(c.ws->paused);
  b.ws->backlog = 0;
  b.handler->on_drain(b.ws);   // B's queue is written out
  CHECK_FALSE(a.ws->paused);
  CHECK_FALSE(c.ws->paused);
  CHECK(w.rt->fanout().stats().resumes == 2);

  b.ws->backlog = http::kBacklogBytes + 1;  // behind again, and then closed (e.g. with 1013)
  w.say(a, "bcast:5");
  CHECK(a.ws->paused);
  w.hang_up(b, 1013);
  CHECK_FALSE(a.ws->paused);  // a receiver that is gone holds nobody

  // A publisher that receives its own broadcasts and falls behind is held, and released by its
  // own drain (it must not count as gone).
  w.say(a, "bcast-self:6");
  a.ws->backlog = http::kBacklogBytes + 1;
  w.say(a, "bcast-self:7");
  CHECK(a.ws->paused);
  a.ws->backlog = 0;
  a.handler->on_drain(a.ws);
  CHECK_FALSE(a.ws->paused);
}

}  // namespace dog::test
