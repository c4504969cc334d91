// dog::App — registers classes, parses flags and serves them on one node.
#include <CLI/CLI.hpp>
#include <asio/signal_set.hpp>
#include <cstdio>

#include "node/http/server.h"
#include "node/runtime/runtime.h"

namespace dog {

struct App::Impl {
  CLI::App cli{"a dog node"};
  std::string http = "127.0.0.1:8080";
  int64_t max_body_kib = 1024;
  std::vector<std::pair<std::string, std::function<std::shared_ptr<Group>()>>> groups;
  std::vector<std::pair<std::string, std::function<std::shared_ptr<Replica>()>>> replicas;
};

App::App() : impl_(std::make_unique<Impl>()) {
  impl_->cli.add_option("--http", impl_->http, "HOST:PORT to serve HTTP and WebSockets on")
      ->capture_default_str();
  impl_->cli.add_option("--max-body-kib", impl_->max_body_kib, "largest request body accepted, KiB")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
}

App::~App() = default;

CLI::App& App::cli() { return impl_->cli; }

void App::add_group(std::string binding, std::function<std::shared_ptr<Group>()> make) {
  impl_->groups.emplace_back(std::move(binding), std::move(make));
}

void App::add_replica(std::string binding, std::function<std::shared_ptr<Replica>()> make) {
  impl_->replicas.emplace_back(std::move(binding), std::move(make));
}

int App::run(int argc, char** argv) {
  try {
    impl_->cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return impl_->cli.exit(e);
  }
  if (!fetch_) {
    std::fprintf(stderr, "dog: no request handler set (call app.fetch(...) before run)\n");
    return 2;
  }
  asio::ip::tcp::endpoint endpoint;
  try {
    endpoint = node::parse_endpoint(impl_->http);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dog: --http: %s\n", e.what());
    return 2;
  }

  node::Loop loop;
  Runtime runtime(loop, config);
  for (auto& [name, make] : impl_->groups) runtime.add_group(name, make);
  for (auto& [name, make] : impl_->replicas) runtime.add_replica(name, make);

  auto http_config = node::HttpConfig::defaults();
  http_config.max_body_bytes = static_cast<size_t>(impl_->max_body_kib) << 10;
  Fetch handler = fetch_;
  node::HttpServer server(loop, http_config, [&runtime, handler](Request& req) -> Task<Response> {
    // The boundary where user errors become statuses; nothing below it can take the node down.
    try {
      co_return co_await handler(req, runtime.env());
    } catch (const HttpError& e) {
      co_return Response::text(e.status(), std::string(e.what()) + "\n");
    } catch (const BadId& e) {
      co_return Response::text(400, std::string(e.what()) + "\n");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "dog: request %s %s failed: %s\n", req.method.c_str(), req.target.c_str(), e.what());
      co_return Response::text(500, "internal error\n");
    }
  });
  try {
    server.listen(endpoint);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dog: cannot listen on %s: %s\n", impl_->http.c_str(), e.what());
    return 1;
  }
  asio::signal_set signals(loop.io(), SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int) {
    if (ec) return;
    std::fprintf(stderr, "dog: shutting down\n");
    server.shutdown(std::chrono::seconds(5), [&] { loop.stop(); });
  });
  std::fprintf(stderr, "dog: serving on http://%s\n", impl_->http.c_str());
  loop.run();
  return 0;
}

}  // namespace dog
