#include "harness.h"

#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

namespace dog::test {

Task<ObjectId> TestGroup::clusterize(Request& req, Namespace& child) {
  if (g_world->cluster) co_return co_await g_world->cluster(req, child);
  co_return co_await Group::clusterize(req, child);
}

Task<Response> TestGroup::receive(Request& req) {
  if (g_world->group_overrides_receive) co_return Response::text(200, "group receive " + std::string(req.path()));
  co_return co_await Group::receive(req);
}

Task<Response> TestRoom::receive(Request& req) {
  auto& log = g_world->log;
  log.receive_paths.emplace_back(req.path());
  log.last_method = req.method;
  log.receive_headers.clear();
  for (const auto& h : req.headers)
    if (h.name.rfind("x-dog-", 0) == 0) log.receive_headers[h.name] = h.value;
  auto path = req.path();
  if (path == "/ws") co_return co_await connect(req);
  if (path == "/throw") throw std::runtime_error("receive bug");
  std::string m(req.query_param("m").value_or(""));
  if (path == "/h/emit") {
    emit(m);
    co_return Response::text(200, "DONE");
  }
  if (path == "/h/broadcast") {
    co_await broadcast(m);
    co_return Response::text(200, "DONE");
  }
  if (path == "/h/whisper") {
    co_await whisper(std::string(req.query_param("target").value_or("")), m);
    co_return Response::text(200, "DONE");
  }
  co_return Response::text(200, "ok " + std::string(path));
}

Task<void> TestRoom::onopen(Socket& s) {
  g_world->log.events.push_back("open:" + s.uid());
  if (g_world->on_open) co_await g_world->on_open(s);
}

// Commands a test client can send: emit:M, emit-self:M, bcast:M, bcast-self:M, whisper:T:M,
// json (broadcast an object), close.
Task<void> TestRoom::onmessage(Socket& s, std::string_view data) {
  std::string d(data);
  g_world->log.events.push_back("msg:" + s.uid() + ":" + d);
  auto arg = [&](std::string_view prefix) { return d.substr(prefix.size()); };
  if (d.rfind("emit:", 0) == 0) s.emit(arg("emit:"));
  else if (d.rfind("emit-self:", 0) == 0) s.emit(arg("emit-self:"), true);
  else if (d.rfind("bcast:", 0) == 0) co_await s.broadcast(arg("bcast:"));
  else if (d.rfind("bcast-self:", 0) == 0) co_await s.broadcast(arg("bcast-self:"), true);
  else if (d.rfind("whisper:", 0) == 0) {
    std::string rest = arg("whisper:");
    auto colon = rest.find(':');
    co_await s.whisper(rest.substr(0, colon), rest.substr(colon + 1));
  } else if (d == "json") {
    Json obj = {{"a", 1}, {"b", "two"}};
    co_await s.broadcast(obj, true);
  } else if (d == "close") {
    s.close(4001, "bye");
  } else if (d == "slow") {
    asio::steady_timer t(g_world->loop.io(), std::chrono::milliseconds(20));
    co_await t.async_wait(asio::use_awaitable);
    g_world->log.events.push_back("slow-done");
  } else if (d == "throw") {
    throw std::runtime_error("onmessage bug");
  }
}

Task<void> TestRoom::onclose(Socket& s) {
  g_world->log.events.push_back("close:" + s.uid() + ":" + std::to_string(connections()));
  if (g_world->on_close) co_await g_world->on_close(s);
}

Task<void> TestRoom::onerror(Socket& s) {
  if (!g_world->room_has_onerror) {
    co_await Replica::onerror(s);  // the default: onclose
    co_return;
  }
  g_world->log.events.push_back("error:" + s.uid());
}

Task<Json> TestRoom::ongossip(const Json& msg) {
  g_world->log.events.push_back("gossip:" + uid());
  std::string mode = g_world->gossip_mode.count(uid()) ? g_world->gossip_mode[uid()] : "answer";
  if (mode == "throw") throw std::runtime_error("gossip bug");
  if (mode == "missing") co_return co_await Replica::ongossip(msg);
  if (mode == "null") co_return nullptr;
  if (mode == "slow") {
    asio::steady_timer t(g_world->loop.io(), std::chrono::milliseconds(300));
    co_await t.async_wait(asio::use_awaitable);
  }
  co_return Json{{"from", uid()}, {"echo", msg}};
}

}  // namespace dog::test
