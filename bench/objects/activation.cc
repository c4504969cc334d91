// dog-activation-bench: the cost of the first request to a new object, in-process (one
// Runtime, no sockets, no cluster). Each sample is one identify + one stub fetch, timed with
// steady_clock around both awaits:
//   "group"   : a new Group id every time, so the request activates a Group and its first
//               Replica (the worst case: two objects created);
//   "replica" : one Group with limit 0 (DOG: every identify creates a Replica) and a new user
//               every time, so every request activates one new Replica in an existing Group.
//               (With a positive limit a plain HTTP fetch releases its slot at once, so the
//               next user would reuse the same Replica.)
// Prints one JSON line: {"samples", "group_p50_us", "group_p99_us", "replica_p50_us",
// "replica_p99_us", "replica_first100_p99_us", "replica_last100_p99_us" (the cost as the Group
// grows), "warm_p99_us" (identify + fetch of an object that already exists)}.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <chrono>
#include <cstdio>
#include <vector>

#include "dog/dog.h"
#include "node/loop.h"
#include "node/runtime/runtime.h"

namespace {

int g_limit = 1;

struct BenchGroup : dog::Group {
  dog::Namespace& link(dog::Env& env) override { return env["ROOM"]; }
};
struct BenchRoom : dog::Replica {
  dog::Namespace& link(dog::Env& env) override { return env["GROUP"]; }
  dog::Task<dog::Response> receive(dog::Request&) override { co_return dog::Response::text(200, "ok"); }
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

dog::Task<double> one(dog::Runtime& rt, const std::string& group, const std::string& user) {
  dog::Request req;
  req.method = "GET";
  req.target = "/hit";
  req.headers.add("Host", "bench");
  auto& env = rt.env();
  auto t0 = std::chrono::steady_clock::now();
  auto stub = co_await dog::identify(env["GROUP"].id_from_name(group), user, {env["GROUP"], env["ROOM"]});
  auto res = co_await stub.fetch(req);
  auto t1 = std::chrono::steady_clock::now();
  if (res.status != 200) throw std::runtime_error("fetch answered " + std::to_string(res.status));
  co_return std::chrono::duration<double, std::micro>(t1 - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"first-request latency of new objects, in-process"};
  int samples = 20'000, replicas = 3'334;
  cli.add_option("--samples", samples, "new Groups (and warm requests)")->check(CLI::Range(100, 1'000'000));
  cli.add_option("--replicas", replicas, "new Replicas in the one Group (3,334 = 10,000 users at limit 3)")
      ->check(CLI::Range(100, 1'000'000));
  CLI11_PARSE(cli, argc, argv);

  dog::node::Loop loop;
  dog::Runtime rt(loop, dog::RuntimeConfig{});
  rt.add_group("GROUP", [] {
    auto g = std::make_shared<BenchGroup>();
    g->limit = g_limit;
    return g;
  });
  rt.add_replica("ROOM", [] { return std::make_shared<BenchRoom>(); });

  std::vector<double> group_us, replica_us, warm_us;
  std::exception_ptr error;
  bool done = false;
  asio::co_spawn(
      loop.io(),
      [&]() -> dog::Task<void> {
        for (int i = 0; i < 200; ++i) co_await one(rt, "warm-g" + std::to_string(i), "w");  // warm-up
        for (int i = 0; i < samples; ++i) group_us.push_back(co_await one(rt, "g" + std::to_string(i), "u"));
        g_limit = 0;  // read when the Group "one" is created, on its first identify below
        for (int i = 0; i < replicas; ++i) replica_us.push_back(co_await one(rt, "one", "u" + std::to_string(i)));
        for (int i = 0; i < samples; ++i) warm_us.push_back(co_await one(rt, "g" + std::to_string(i), "u"));
      },
      [&](std::exception_ptr e) {
        error = e;
        done = true;
        loop.stop();
      });
  loop.run();
  if (!done || error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "activation: %s\n", e.what());
    }
    return 1;
  }
  std::printf(
      "{\"samples\": %d, \"group_p50_us\": %.2f, \"group_p99_us\": %.2f, \"replica_p50_us\": %.2f, "
      "\"replica_p99_us\": %.2f, \"replica_first100_p99_us\": %.2f, \"replica_last100_p99_us\": %.2f, "
      "\"replicas\": %d, \"warm_p99_us\": %.2f}\n",
      samples, percentile(group_us, 0.5), percentile(group_us, 0.99), percentile(replica_us, 0.5),
      percentile(replica_us, 0.99), percentile({replica_us.begin(), replica_us.begin() + 100}, 0.99),
      percentile({replica_us.end() - 100, replica_us.end()}, 0.99), replicas, percentile(warm_us, 0.99));
  return 0;
}
