// Fuzz targets' helpers for the DOG runtime on one node (node/runtime/): run a task to the end,
// settle the loop, and open a WebSocket through identify as the front door does. The client end
// is tests/runtime/harness.h's TestSocket (only that class of the header is used here).
#pragma once

#include <asio/co_spawn.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include "dog/dog.h"
#include "node/loop.h"
#include "node/runtime/runtime.h"
#include "tests/fuzz/targets.h"
#include "tests/runtime/harness.h"

namespace dog::fuzz {

// Runs ready work until nothing is left (timers that are not due do not count).
inline void settle(node::Loop& loop) { fuzz_check(test::settle_loop(loop), "the runtime settles"); }

// Runs `task` and returns its result, or nothing if it threw or did not finish while settling.
template <typename T>
std::optional<T> run_task(node::Loop& loop, Task<T> task) {
  std::optional<T> out;
  asio::co_spawn(loop.io(), std::move(task), [&](std::exception_ptr e, T v) {
    if (!e) out = std::move(v);
  });
  settle(loop);
  return out;
}

struct WsClient {
  std::shared_ptr<test::TestSocket> ws;
  std::shared_ptr<http::WebSocketHandler> handler;
  bool open() const { return ws && ws->open; }
};

// identify(gid, rid) in `family`, then a WebSocket upgrade of "/ws" through the stub.
inline WsClient connect_ws(Runtime& rt, ObjectId gid, std::string rid, Family family, uint64_t socket_id) {
  http::Request req = test::World::ws_request("/ws");
  auto res = run_task(rt.loop(), [](ObjectId gid, std::string rid, Family family, http::Request* req) -> Task<Response> {
    auto stub = co_await dog::identify(gid, rid, family);
    co_return co_await stub.fetch(*req);
  }(gid, std::move(rid), family, &req));
  WsClient c;
  if (!res || res->status != 101 || !res->websocket) return c;
  c.ws = std::make_shared<test::TestSocket>();
  c.ws->id_ = socket_id;
  c.handler = res->websocket;
  c.handler->on_open(c.ws);
  settle(rt.loop());
  return c;
}

}  // namespace dog::fuzz
