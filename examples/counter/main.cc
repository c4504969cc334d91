// dog-counter: the Counter from DOG's README, with its gossip leaderboard.
//
//   build/bin/dog-counter --http 127.0.0.1:8080 --limit 50
//   ws://127.0.0.1:8080/ws?u=NAME   then send {"type":"+1"}, {"type":"-1"} or
//                                   {"type":"refresh:leaderboard"}
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <map>

#include "dog/dog.h"

namespace {

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

struct Scores : dog::Group {
  dog::Namespace& link(dog::Env& env) override { return env["COUNTER"]; }
};

struct Counter : dog::Replica {
  std::map<std::string, int64_t> counts;
  int64_t last_update = 0;
  dog::Json leaders = dog::Json::array();
  // Gossip is point-in-time; refresh at most this often (the README uses 60 s).
  std::chrono::milliseconds refresh_every{60'000};

  dog::Namespace& link(dog::Env& env) override { return env["SCORES"]; }

  dog::Task<dog::Response> receive(dog::Request& req) override {
    if (req.path() == "/ws" || req.path() == "/ws/") co_return co_await connect(req);
    co_return dog::Response::text(404, "Invalid");
  }

  dog::Task<void> onopen(dog::Socket& socket) override {
    counts[socket.uid()] = 0;
    socket.emit("\"" + socket.uid() + "\" has joined");  // only this Replica's sockets
    co_return;
  }

  dog::Task<void> onclose(dog::Socket& socket) override {
    counts.erase(socket.uid());
    co_return;
  }

  dog::Task<void> onmessage(dog::Socket& socket, std::string_view data) override {
    auto msg = dog::Json::parse(data, nullptr, false);
    if (!msg.is_object() || !msg.contains("type") || !msg["type"].is_string()) {
      socket.send({{"error", "expected {\"type\": \"+1\" | \"-1\" | \"refresh:leaderboard\"}"}});
      co_return;
    }
    std::string type = msg["type"];
    int64_t& count = counts[socket.uid()];
    if (type == "+1" || type == "-1") {
      count += type == "+1" ? 1 : -1;
      std::string news = "\"" + socket.uid() + "\" now has " + std::to_string(count);
      co_await socket.broadcast(news);  // everyone in the cluster
    } else if (type == "refresh:leaderboard") {
      if (now_ms() - last_update > refresh_every.count()) {
        dog::Json ask = {{"type", "ask:scores"}};
        auto results = co_await gossip(ask);
        std::vector<std::pair<std::string, int64_t>> all(counts.begin(), counts.end());
        for (auto& r : results)
          if (r.value && r.value->is_array())
            for (auto& pair : *r.value)
              if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_number_integer())
                all.emplace_back(pair[0].get<std::string>(), pair[1].get<int64_t>());
        std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.second > b.second; });
        if (all.size() > 10) all.resize(10);
        leaders = dog::Json::array();
        for (auto& [who, n] : all) leaders.push_back({who, n});
        last_update = now_ms();
      }
      dog::Json board = {{"leaders", leaders}, {"timestamp", last_update}};
      co_await socket.broadcast(board, true);
    } else {
      socket.send({{"error", "unknown message type: " + type}});
    }
  }

  dog::Task<dog::Json> ongossip(const dog::Json& msg) override {
    if (msg.value("type", "") == "ask:scores") {
      dog::Json out = dog::Json::array();
      for (auto& [who, n] : counts) out.push_back({who, n});
      co_return out;
    }
    throw std::runtime_error("Missing \"" + msg.value("type", "") + "\" handler in ongossip");
  }
};

}  // namespace

int main(int argc, char** argv) {
  dog::App app;
  int limit = 50;
  int refresh_ms = 60'000;
  app.cli().add_option("--limit", limit, "most connections per Counter replica")->capture_default_str();
  app.cli().add_option("--refresh-ms", refresh_ms, "leaderboard cache lifetime")->capture_default_str();
  app.add_group("SCORES", [&limit] {
    auto g = std::make_shared<Scores>();
    g->limit = limit;
    return g;
  });
  app.add_replica("COUNTER", [&refresh_ms] {
    auto c = std::make_shared<Counter>();
    c->refresh_every = std::chrono::milliseconds(refresh_ms);
    return c;
  });
  app.fetch([](dog::Request& req, dog::Env& env) -> dog::Task<dog::Response> {
    std::string reqid(req.query_param("u").value_or("anon"));
    auto gid = env["SCORES"].id_from_name("scores");
    auto stub = co_await dog::identify(gid, reqid, {env["SCORES"], env["COUNTER"]});
    co_return co_await stub.fetch(req);
  });
  return app.run(argc, argv);
}
