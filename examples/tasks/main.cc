// dog-tasks: the Pool/Task example from DOG's README as a small job pool.
//
// Each task name is a Group (`POOL.idFromName(taskname)`); callers are identified by their
// bearer token, else their address, else "anon" (the README's identify). A Task replica holds
// at most --limit connections: workers connect over WebSocket, producers POST jobs over HTTP.
//
//   GET  /tasks/<name>/ws?worker=W  a worker joins; it receives {"type":"job",...} messages and
//                                   answers {"type":"done","id":N,"result":...}
//   POST /tasks/<name>/jobs          body = job payload; sent to one idle worker in the pool
//                                   (any Replica), answers {"id":N} or 503 if none is idle
//   GET  /tasks/<name>               JSON status of the Replica that served the request
#include <CLI/CLI.hpp>
#include <deque>
#include <map>
#include <optional>

#include "dog/dog.h"

namespace {

// Splits "/tasks/NAME[/ws|/jobs][/]" by hand (no std::regex on client input). Returns the
// task name and the sub-route ("", "/ws" or "/jobs"), or nothing if the path does not match.
struct TaskPath {
  std::string name;
  std::string sub;
};
std::optional<TaskPath> parse_task_path(std::string_view path) {
  constexpr std::string_view kPrefix = "/tasks/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  path.remove_prefix(kPrefix.size());
  size_t slash = path.find('/');
  TaskPath out{std::string(path.substr(0, slash)), ""};
  if (out.name.empty()) return std::nullopt;
  std::string_view rest = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest == "/ws" || rest == "/jobs") out.sub = rest;
  else if (!rest.empty()) return std::nullopt;
  return out;
}

// "Bearer TOKEN" -> "TOKEN": the credentials after the scheme and its spaces (empty if none).
std::string bearer_token(std::string_view auth) {
  size_t i = 0;
  while (i < auth.size() && auth[i] != ' ' && auth[i] != '\t') ++i;
  while (i < auth.size() && (auth[i] == ' ' || auth[i] == '\t')) ++i;
  return std::string(auth.substr(i));
}

struct Pool : dog::Group {
  dog::Namespace& link(dog::Env& env) override { return env["TASK"]; }
};

struct Task : dog::Replica {
  std::map<std::string, int> idle;  // worker request id -> idle sockets
  int64_t next_job = 1;
  int64_t done = 0;

  dog::Namespace& link(dog::Env& env) override { return env["POOL"]; }

  dog::Task<dog::Response> receive(dog::Request& req) override {
    auto route = parse_task_path(req.path());
    if (!route) co_return dog::Response::text(404, "Missing task name");
    const std::string& sub = route->sub;
    if (sub == "/ws") co_return co_await connect(req);
    if (sub == "/jobs") {
      if (req.method != "POST") co_return dog::Response::method_not_allowed("POST");
      // Ask every Replica which of its workers is idle; take the first answer.
      std::string worker;
      for (auto& [w, n] : idle)
        if (n > 0) { worker = w; break; }
      if (worker.empty()) {
        dog::Json ask = {{"type", "idle?"}};
        for (auto& r : co_await gossip(ask))
          if (r.value && r.value->is_string()) { worker = r.value->get<std::string>(); break; }
      }
      if (worker.empty()) co_return dog::Response::json(503, R"({"error":"no idle worker"})");
      int64_t id = next_job++;
      dog::Json job = {{"type", "job"}, {"id", id}, {"from", uid()}, {"payload", req.body}};
      co_await whisper(worker, job);  // reaches the worker on whichever Replica holds it
      co_return dog::Response::json(200, dog::Json({{"id", id}, {"worker", worker}}).dump());
    }
    dog::Json status = {{"replica", uid()}, {"connections", connections()}, {"done", done}};
    co_return dog::Response::json(200, status.dump());
  }

  dog::Task<void> onopen(dog::Socket& socket) override {
    idle[socket.uid()]++;
    co_return;
  }
  dog::Task<void> onclose(dog::Socket& socket) override {
    if (--idle[socket.uid()] <= 0) idle.erase(socket.uid());
    co_return;
  }
  dog::Task<void> onmessage(dog::Socket& socket, std::string_view data) override {
    auto msg = dog::Json::parse(data, nullptr, false);
    if (!msg.is_object() || msg.value("type", "") != "done") {
      socket.send({{"error", "expected {\"type\":\"done\",\"id\":N,\"result\":...}"}});
      co_return;
    }
    ++done;
    // Everyone in the pool hears about finished jobs.
    dog::Json news = {{"type", "finished"}, {"id", msg.value("id", 0)}, {"by", socket.uid()}, {"result", msg.value("result", dog::Json())}};
    co_await socket.broadcast(news);
  }
  dog::Task<dog::Json> ongossip(const dog::Json& msg) override {
    if (msg.value("type", "") == "idle?") {
      for (auto& [w, n] : idle)
        if (n > 0) co_return w;
      co_return nullptr;
    }
    throw std::runtime_error("unknown gossip");
  }
};

}  // namespace

int main(int argc, char** argv) {
  dog::App app;
  int limit = 50;
  app.cli().add_option("--limit", limit, "most connections per Task replica")->capture_default_str();
  app.add_group("POOL", [&limit] {
    auto p = std::make_shared<Pool>();
    p->limit = limit;
    return p;
  });
  app.replica<Task>("TASK");
  app.fetch([](dog::Request& req, dog::Env& env) -> dog::Task<dog::Response> {
    auto route = parse_task_path(req.path());
    if (!route) co_return dog::Response::text(404, "Missing task name");
    std::string name = route->name;
    std::string reqid = "anon";
    if (auto w = req.query_param("worker")) reqid = std::string(*w);
    else if (auto auth = req.headers.get("authorization")) reqid = bearer_token(*auth);
    if (reqid.empty()) co_return dog::Response::text(400, "Invalid task name or identity");
    auto gid = env["POOL"].id_from_name(name);
    auto task = co_await dog::identify(gid, reqid, {env["POOL"], env["TASK"]});
    co_return co_await task.fetch(req);
  });
  return app.run(argc, argv);
}
