// dog-echo-server: the front door alone, for benchmarks. `GET /` answers a small 200 (the
// same thing the nginx baseline returns) plus any `--header` lines, which bench/front-door uses
// to make the response exactly as long as nginx's; `/ws` echoes every WebSocket message.
#include <CLI/CLI.hpp>
#include <asio/signal_set.hpp>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "dog/websocket.h"
#include "node/http/server.h"

namespace {
struct Echo : dog::http::WebSocketHandler {
  void on_message(const std::shared_ptr<dog::http::WebSocket>& ws, std::string_view data, bool text) override {
    ws->send(data, text);
  }
};
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dog front-door echo server (benchmark target)"};
  std::string listen = "127.0.0.1:8090";
  std::vector<std::string> extra;
  app.add_option("--http", listen, "HOST:PORT to listen on");
  app.add_option("--header", extra, "\"Name: value\" added to every `GET /` answer (repeatable)");
  CLI11_PARSE(app, argc, argv);
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& h : extra) {
    auto colon = h.find(':');
    if (colon == std::string::npos || colon == 0) {
      std::fprintf(stderr, "dog-echo-server: --header needs \"Name: value\", got \"%s\"\n", h.c_str());
      return 2;
    }
    auto value = h.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    headers.emplace_back(h.substr(0, colon), value);
  }

  dog::node::Loop loop;
  auto echo = std::make_shared<Echo>();
  auto cfg = dog::node::HttpConfig::defaults();
  dog::node::HttpServer server(loop, cfg, [echo, &headers](dog::http::Request& req) -> asio::awaitable<dog::http::Response> {
    if (req.path() == "/ws") co_return dog::http::Response::accept_websocket(echo);
    auto resp = dog::http::Response::text(200, "ok\n");
    for (const auto& [name, value] : headers) resp.headers.add(name, value);
    co_return resp;
  });
  try {
    server.listen(dog::node::parse_endpoint(listen));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dog-echo-server: cannot listen on %s: %s\n", listen.c_str(), e.what());
    return 2;
  }
  asio::signal_set signals(loop.io(), SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) {
    server.shutdown(std::chrono::seconds(2), [&] { loop.stop(); });
  });
  std::fprintf(stderr, "dog-echo-server: listening on %s\n", listen.c_str());
  loop.run();
  return 0;
}
