// AdminServer: the listener, the routing of admin paths, health, readiness and drain.
// /metrics is rendered in admin_metrics.cc, the inspector (/members, /objects, /where) in
// admin_inspect.cc.
#include "node/admin/admin.h"

#include <array>

#include "node/cluster/cluster.h"
#include "node/http/ws_codec.h"

namespace dog::admin {

namespace {

struct Route {
  std::string_view path;
  std::string_view allow;  // the methods it answers, as the Allow header lists them
};
constexpr std::array<Route, 11> kRoutes{{
    {"/metrics", "GET, HEAD"},
    {"/healthz", "GET, HEAD"},
    {"/readyz", "GET, HEAD"},
    {"/members", "GET, HEAD"},
    {"/objects", "GET, HEAD"},
    {"/where", "GET, HEAD"},
    {"/drain", "POST"},
    {"/keys", "GET, HEAD"},
    {"/keys/install", "POST"},
    {"/keys/use", "POST"},
    {"/keys/remove", "POST"},
}};

bool allowed(std::string_view allow, const std::string& method) {
  if (allow == "POST") return method == "POST";
  return method == "GET" || method == "HEAD";
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    out += c;
  }
  // Names are UTF-8: bytes that are not would fail every JSON answer that echoes them.
  if (!http::ws::valid_utf8(out)) return std::nullopt;
  return out;
}

Response json_response(int status, const Json& body) {
  return Response::json(status, body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
}

AdminServer::AdminServer(node::Loop& loop, Runtime& runtime, AdminOptions options)
    : loop_(loop), runtime_(runtime), lag_(loop.io(), options.lag_interval) {
  lag_.start();
}

AdminServer::~AdminServer() = default;

void AdminServer::listen(const asio::ip::tcp::endpoint& endpoint) {
  auto config = node::HttpConfig::defaults();
  config.max_body_bytes = 4 << 10;  // admin requests carry no bodies worth the name
  // Probes and scrapes send their request at once: a connection silent for kAdminTimeout (from
  // its accept or its last answer), or not done with its request head kAdminTimeout after its
  // first byte, is closed, so idle sockets cannot hold the connection cap for long.
  config.header_timeout = kAdminTimeout;
  config.idle_timeout = kAdminTimeout;
  config.body_timeout = kAdminTimeout;
  config.max_connections = kAdminMaxConnections;
  server_ = std::make_unique<node::HttpServer>(loop_, config, [this](Request& req) { return handle(req); });
  server_->listen(endpoint);
}

asio::ip::tcp::endpoint AdminServer::local_endpoint() const { return server_->local_endpoint(); }

void AdminServer::close() {
  if (server_) server_->shutdown(std::chrono::milliseconds(0), [] {});
}

std::string AdminServer::not_ready_reason() const {
  switch (phase_) {
    case Phase::kStarting: return "starting";
    case Phase::kJoining: return "joining the cluster";
    case Phase::kDraining: return "draining";
    case Phase::kServing: break;
  }
  if (cluster_ && cluster_->table().member_count() == 0) return "no routing table";
  return "";
}

Response AdminServer::drain() {
  if (!drain_) return Response::text(503, "drain is not available on this node\n");
  if (phase_ != Phase::kDraining) drain_();  // the drain sets the phase; a second POST is a no-op
  return Response::text(202, "draining\n");
}

Task<Response> AdminServer::handle(Request& req) {
  const std::string_view path = req.path();
  const Route* route = nullptr;
  for (const auto& r : kRoutes)
    if (r.path == path) route = &r;
  if (!route) co_return Response::text(404, "not found: the admin endpoint serves /metrics /healthz /readyz /members /objects /where /drain /keys\n");
  if (!allowed(route->allow, req.method)) co_return Response::method_not_allowed(std::string(route->allow));

  Response res;
  if (path == "/metrics") {
    res = Response::text(200, render_metrics(), "text/plain; version=0.0.4; charset=utf-8");
  } else if (path == "/healthz") {
    res = Response::text(200, "ok\n");
  } else if (path == "/readyz") {
    auto reason = not_ready_reason();
    res = reason.empty() ? Response::text(200, "ready\n") : Response::text(503, reason + "\n");
  } else if (path == "/members") {
    res = members();
  } else if (path == "/objects") {
    res = objects(req);
  } else if (path == "/where") {
    res = co_await where(req);
  } else if (path == "/drain") {
    res = drain();
  } else {
    res = keys(req);
  }
  res.headers.set("Cache-Control", "no-store");
  co_return res;
}

}  // namespace dog::admin
