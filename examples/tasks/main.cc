// dog-tasks: the Pool/Task example from DOG's README as a small job pool.
//
// Each task name is a Group (`POOL.idFromName(taskname)`); callers are identified by their
// bearer token, else their address, else "anon" (the README's identify). A Task replica holds
// at most --limit connections: workers connect over WebSocket, producers POST jobs over HTTP.
//
//   GET  /tasks/<name>/ws?worker=W  a worker joins; it receives {"type":"job","id":ID,...}
//                                   messages and answers {"type":"done","id":ID,"result":...}
//   POST /tasks/<name>/jobs          body = job payload; sent to one socket of one idle worker in
//                                   the pool (any Replica), answers {"id":ID,"worker":W} or 503
//                                   if every worker is busy. IDs are unique in the pool.
//   GET  /tasks/<name>               JSON status of the Replica that served the request
//
// A worker is busy from the job's assignment until it answers "done" with that job's id.
#include <CLI/CLI.hpp>
#include <map>
#include <optional>
#include <vector>

#include "dog/dog.h"

namespace {

// Splits "/tasks/NAME[/ws|/jobs][/]" by hand (no regex on client input). Returns the
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

// A worker (one request id) and its sockets on this Replica. A worker is busy from the moment a
// job is assigned until one of its sockets answers "done"; a job goes to exactly one socket.
// The Socket pointers are valid from onopen to onclose (the runtime owns the sockets).
struct Worker {
  std::vector<dog::Socket*> sockets;
  std::string job;  // id of the job in progress ("" = idle)
};

struct Task : dog::Replica {
  std::map<std::string, Worker> workers;      // worker request id -> its sockets here
  std::map<std::string, std::string> claims;  // job id -> worker claimed for it, awaiting "assign"
  int64_t next_job = 1;
  int64_t done = 0;

  dog::Namespace& link(dog::Env& env) override { return env["POOL"]; }

  // Job ids are unique in the pool: this Replica's uid (unique in the namespace) and a counter.
  std::string new_job_id() { return uid().substr(0, 16) + "-" + std::to_string(next_job++); }

  // Marks one idle worker busy with `job`; returns its id, or "" if every worker here is busy.
  std::string claim_idle(const std::string& job) {
    for (auto& [w, worker] : workers)
      if (worker.job.empty() && !worker.sockets.empty()) {
        worker.job = job;
        return w;
      }
    return "";
  }

  // Sends `job` to one socket of `w` (which must be claimed for it here).
  bool deliver(const std::string& w, const dog::Json& job) {
    auto it = workers.find(w);
    if (it == workers.end() || it->second.sockets.empty()) return false;
    it->second.sockets.front()->send(job);
    return true;
  }

  dog::Task<dog::Response> receive(dog::Request& req) override {
    auto route = parse_task_path(req.path());
    if (!route) co_return dog::Response::text(404, "Missing task name");
    const std::string& sub = route->sub;
    if (sub == "/ws") co_return co_await connect(req);
    if (sub == "/jobs") {
      if (req.method != "POST") co_return dog::Response::method_not_allowed("POST");
      std::string id = new_job_id();
      dog::Json job = {{"type", "job"}, {"id", id}, {"from", uid()}, {"payload", req.body}};
      // An idle worker here first; else every peer claims at most one of its own, the first
      // claim wins ("assign" delivers there) and the other peers release theirs.
      std::string worker = claim_idle(id);
      if (!worker.empty()) {
        deliver(worker, job);
      } else {
        dog::Json claim = {{"type", "claim"}, {"job", id}};
        for (auto& r : co_await gossip(claim))
          if (worker.empty() && r.value && r.value->is_string()) worker = r.value->get<std::string>();
        dog::Json assign = {{"type", "assign"}, {"job", job}, {"worker", worker}};
        co_await gossip(assign);
      }
      if (worker.empty()) co_return dog::Response::json(503, R"({"error":"no idle worker"})");
      co_return dog::Response::json(200, dog::Json({{"id", id}, {"worker", worker}}).dump());
    }
    size_t busy = 0;
    for (auto& [w, worker] : workers) busy += worker.job.empty() ? 0 : 1;
    dog::Json status = {{"replica", uid()}, {"connections", connections()}, {"workers", workers.size()},
                        {"busy", busy}, {"done", done}};
    co_return dog::Response::json(200, status.dump());
  }

  dog::Task<void> onopen(dog::Socket& socket) override {
    workers[socket.uid()].sockets.push_back(&socket);
    co_return;
  }
  dog::Task<void> onclose(dog::Socket& socket) override {
    auto it = workers.find(socket.uid());
    if (it == workers.end()) co_return;
    std::erase(it->second.sockets, &socket);
    if (it->second.sockets.empty()) workers.erase(it);  // its job, if any, is lost with it
    co_return;
  }
  dog::Task<void> onmessage(dog::Socket& socket, std::string_view data) override {
    auto msg = dog::Json::parse(data, nullptr, false);
    if (!msg.is_object() || msg.value("type", "") != "done") {
      socket.send({{"error", "expected {\"type\":\"done\",\"id\":ID,\"result\":...}"}});
      co_return;
    }
    auto it = workers.find(socket.uid());
    if (it == workers.end() || it->second.job.empty() || !msg.contains("id") || msg["id"] != it->second.job) {
      socket.send({{"error", "no such job in progress"}});
      co_return;
    }
    it->second.job.clear();  // idle again
    ++done;
    // Everyone in the pool hears about finished jobs.
    dog::Json news = {{"type", "finished"}, {"id", msg["id"]}, {"by", socket.uid()}, {"result", msg.value("result", dog::Json())}};
    co_await socket.broadcast(news);
  }
  dog::Task<dog::Json> ongossip(const dog::Json& msg) override {
    std::string type = msg.value("type", "");
    if (type == "claim") {
      std::string job = msg.value("job", "");
      std::string w = job.empty() ? "" : claim_idle(job);
      if (w.empty()) co_return nullptr;
      claims[job] = w;
      co_return w;
    }
    if (type == "assign") {
      const dog::Json& job = msg["job"];
      std::string id = job.value("id", "");
      auto c = claims.find(id);
      if (c == claims.end()) co_return nullptr;
      std::string mine = c->second;
      claims.erase(c);
      if (mine == msg.value("worker", "") && deliver(mine, job)) co_return true;
      auto it = workers.find(mine);  // not chosen (or gone): release the claim
      if (it != workers.end() && it->second.job == id) it->second.job.clear();
      co_return false;
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
