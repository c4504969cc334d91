// In-process harness for the DOG conformance suite. It drives the real runtime: real
// identify, real stubs, real Replica hooks. The only stand-in is the client end of a
// WebSocket: TestSocket receives what the server sends, and the test plays the client by
// calling the handler the upgrade returned (exactly what the front door does).
#pragma once

#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dog/dog.h"
#include "node/loop.h"
#include "node/runtime/runtime.h"

namespace dog::test {

// What the server sent to one client connection.
struct TestSocket : http::WebSocket {
  std::vector<std::string> got;
  bool open = true;
  uint16_t close_code = 0;
  uint64_t id_ = 0;
  bool send(std::string_view data, bool) override {
    if (!open) return false;
    got.emplace_back(data);
    return true;
  }
  // The buffers fan-out handed over by reference (identity: one encoding for all recipients).
  std::vector<const void*> shared;
  bool send_shared(const http::SharedFrames& frames) override {
    shared.push_back(frames.get());
    return frames && send_encoded(*frames);
  }
  // Server frames (unmasked, FIN set, as make_frames() writes them): the payloads are recorded
  // like send()'s, so tests see fan-out deliveries whatever path they took.
  bool send_encoded(std::string_view frames) override {
    if (!open) return false;
    size_t i = 0;
    while (i + 2 <= frames.size()) {
      uint64_t len = uint8_t(frames[i + 1]) & 0x7f;
      size_t h = 2;
      if (len == 126) {
        len = (uint64_t(uint8_t(frames[i + 2])) << 8) | uint8_t(frames[i + 3]);
        h = 4;
      } else if (len == 127) {
        len = 0;
        for (int k = 0; k < 8; ++k) len = (len << 8) | uint8_t(frames[i + 2 + k]);
        h = 10;
      }
      got.emplace_back(frames.substr(i + h, len));
      i += h + len;
    }
    return true;
  }
  void close(uint16_t code, std::string_view) override {
    if (!open) return;
    open = false;
    close_code = code;
  }
  bool is_open() const override { return open; }
  uint64_t id() const override { return id_; }
  size_t backlog = 0;  // what buffered_bytes() reports (a test makes a receiver fall behind)
  size_t buffered_bytes() const override { return backlog; }
  bool paused = false;
  bool error_end = false;  // the connection ended without the client's close frame
  bool ended_by_error() const override { return error_end; }
  void pause_reading() override { paused = true; }
  void resume_reading() override { paused = false; }
  bool received(const std::string& m) const {
    for (auto& g : got)
      if (g == m) return true;
    return false;
  }
};

// Everything the test classes observe, in order.
struct Log {
  std::vector<std::string> events;  // "open:R:rid", "close:R:rid", "error:R:rid", "gossip:R", ...
  std::vector<std::string> receive_paths;
  std::map<std::string, std::string> receive_headers;  // last request's x-dog-* headers
  std::string last_method;
  bool has(const std::string& e) const {
    for (auto& x : events)
      if (x == e) return true;
    return false;
  }
};

// Runs ready Asio and KJ work on `loop` until none is left (timers that are not due do not
// count); false if it was still busy after 10,000 rounds. Also used by tests/fuzz/.
inline bool settle_loop(node::Loop& loop) {
  for (int i = 0; i < 10000; ++i) {
    loop.io().restart();
    loop.poll();
    if (loop.io().poll() == 0) {
      loop.poll();
      if (loop.io().poll() == 0) return true;
    }
  }
  return false;
}

struct World;
inline World* g_world = nullptr;  // the running test's world (tests run one at a time)

struct TestGroup : Group {
  Namespace& link(Env& env) override { return env["ROOM"]; }
  Task<ObjectId> clusterize(Request& req, Namespace& child) override;
  Task<Response> receive(Request& req) override;
};

struct TestRoom : Replica {
  Namespace& link(Env& env) override { return env["LOBBY"]; }
  Task<Response> receive(Request& req) override;
  Task<void> onopen(Socket& s) override;
  Task<void> onmessage(Socket& s, std::string_view data) override;
  Task<void> onclose(Socket& s) override;
  Task<void> onerror(Socket& s) override;
  Task<Json> ongossip(const Json& msg) override;
};

// One client connection: the socket the server writes to and the handler it reads from.
struct Client {
  std::string rid;
  std::string replica;  // uid of the Replica that accepted it
  std::shared_ptr<TestSocket> ws;
  std::shared_ptr<http::WebSocketHandler> handler;
};

struct World {
  node::Loop loop;
  RuntimeConfig config;
  std::unique_ptr<Runtime> rt;
  Log log;
  int limit = 2;
  bool group_overrides_receive = false;
  bool room_has_onerror = false;
  // Per-Replica behaviour switches, keyed by uid.
  std::map<std::string, std::string> gossip_mode;  // "answer" (default), "throw", "null", "slow"
  std::function<Task<ObjectId>(Request&, Namespace&)> cluster;  // overrides clusterize if set
  std::function<Task<void>(Socket&)> on_open;                      // extra onopen behaviour
  std::function<Task<void>(Socket&)> on_close;                     // extra onclose behaviour
  uint64_t next_socket = 1;

  explicit World(int l = 2, RuntimeConfig cfg = {}) : config(cfg), limit(l) {
    g_world = this;
    rt = std::make_unique<Runtime>(loop, config);
    rt->add_group("LOBBY", [this] {
      auto g = std::make_shared<TestGroup>();
      g->limit = limit;
      return g;
    });
    rt->add_replica("ROOM", [] { return std::make_shared<TestRoom>(); });
  }
  ~World() {
    settle();  // let closers and other spawned work finish while the runtime is alive
    rt.reset();
    g_world = nullptr;
  }

  Namespace& lobby() { return rt->env()["LOBBY"]; }
  Namespace& room() { return rt->env()["ROOM"]; }
  ObjectId gid() { return lobby().id_from_name("lobby"); }
  runtime::GroupCore& core() { return *rt->group_core(lobby(), gid().hex()); }

  // Runs ready work until nothing is left (timers that are not due do not count).
  void settle() {
    if (!settle_loop(loop)) FAIL("the runtime never settled");
  }

  // Runs a coroutine to completion and returns its result.
  template <typename T>
  T run(Task<T> task) {
    std::optional<T> out;
    std::exception_ptr err;
    asio::co_spawn(loop.io(), std::move(task), [&](std::exception_ptr e, T v) {
      err = e;
      if (!e) out = std::move(v);
    });
    settle();
    if (err) std::rethrow_exception(err);
    REQUIRE(out.has_value());
    return std::move(*out);
  }
  void run(Task<void> task) {
    bool done = false;
    std::exception_ptr err;
    asio::co_spawn(loop.io(), std::move(task), [&](std::exception_ptr e) {
      err = e;
      done = true;
    });
    settle();
    if (err) std::rethrow_exception(err);
    REQUIRE(done);
  }

  // identify() only: the uid of the Replica chosen for `rid` (the slot stays taken until claimed
  // and released, or until the claim timeout).
  Stub identify(const std::string& rid) {
    return run(dog::identify(gid(), rid, {lobby(), room()}));
  }

  static Request make_request(std::string method, std::string target) {
    Request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.headers.add("Host", "test");
    return r;
  }
  static Request ws_request(std::string target) {
    Request r = make_request("GET", std::move(target));
    r.headers.add("Upgrade", "websocket");
    r.headers.add("Connection", "Upgrade");
    r.headers.add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    r.headers.add("Sec-WebSocket-Version", "13");
    return r;
  }

  // A full plain HTTP round trip through identify, as the Worker fetch does it.
  Response http(const std::string& rid, std::string path = "/hello", std::string method = "GET") {
    Request req = make_request(std::move(method), std::move(path));
    return run([](World* w, std::string rid, Request* req) -> Task<Response> {
      auto stub = co_await dog::identify(w->gid(), rid, {w->lobby(), w->room()});
      co_return co_await stub.fetch(*req);
    }(this, rid, &req));
  }

  // Opens a WebSocket for `rid` through identify; REQUIREs the 101.
  Client connect(const std::string& rid, Request req = ws_request("/ws")) {
    Client c;
    c.rid = rid;
    auto res = run([](World* w, std::string rid, Request* req, std::string* uid) -> Task<Response> {
      auto stub = co_await dog::identify(w->gid(), rid, {w->lobby(), w->room()});
      *uid = stub.id().hex();
      co_return co_await stub.fetch(*req);
    }(this, rid, &req, &c.replica));
    REQUIRE(res.status == 101);
    REQUIRE(res.websocket);
    c.ws = std::make_shared<TestSocket>();
    c.ws->id_ = next_socket++;
    c.handler = res.websocket;
    c.handler->on_open(c.ws);
    settle();
    return c;
  }
  void say(Client& c, const std::string& text) {
    c.handler->on_message(c.ws, text, true);
    settle();
  }
  void hang_up(Client& c, uint16_t code = 1000) {
    c.ws->open = false;
    c.handler->on_close(c.ws, code, "");
    settle();
  }
  std::shared_ptr<Replica> replica(const std::string& uid) { return rt->peer(room(), uid); }
  std::vector<std::string> neighbors(const std::string& uid) { return rt->neighbors(room(), uid); }
};

}  // namespace dog::test
