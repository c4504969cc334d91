// dogctl — the operator's client for a node's admin endpoint (`APP --admin HOST:PORT`).
//
//   dogctl [--admin HOST:PORT] [--json] members          the membership as this node sees it
//   dogctl [--admin HOST:PORT] [--json] where NS NAME    the object's owner and where it is live
//   dogctl [--admin HOST:PORT] [--json] objects [NS] [--limit N]
//                                                        the objects live on that node (at most
//                                                        N, default 1000, up to 100000)
//   dogctl [--admin HOST:PORT] drain                     starts that node's drain (as SIGTERM)
//   dogctl keygen                                        a new cluster key (as `APP keygen`)
//   dogctl --admin A,B,C keys list|install KEY|use KEY|remove KEY
//                                                        cluster key rotation on every node
//
// --admin defaults to 127.0.0.1:9090, or DOG_ADMIN. `keys` takes every member's admin endpoint,
// comma-separated (members do not publish theirs), checks them against the membership, and
// refuses `use` and `remove` unless every live member is reached (a member left on the old key
// would fail its probes). KEY is base64 as keygen prints it, or `-` to read it from stdin.
// Exit codes: 0 done; 1 a node could not be reached or refused (its answer is printed on
// stderr); 2 bad usage.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "node/admin/dogctl_print.h"
#include "node/admin/http_client.h"
#include "node/cluster/cluster.h"

namespace {

using dog::admin::http_call;
using dog::admin::query_escape;

struct Options {
  std::string admin = "127.0.0.1:9090";
  double timeout_s = 10;
  bool json = false;
  bool full = false;
  int limit = 1000;
  std::string ns, name;
  std::string key;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) out.push_back(part);
  return out;
}

// Calls the node; prints its refusal and returns nullopt unless the status is 2xx.
std::optional<dog::admin::HttpResult> call(const Options& o, const std::string& method, const std::string& target) {
  try {
    auto r = http_call(o.admin, method, target, std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000)));
    if (r.status / 100 == 2) return r;
    std::fprintf(stderr, "dogctl: %s %s: %d %s", method.c_str(), target.c_str(), r.status, r.body.c_str());
    if (r.body.empty() || r.body.back() != '\n') std::fputc('\n', stderr);
  } catch (const dog::admin::AdminCallError& e) {
    std::fprintf(stderr, "dogctl: %s (is the node running with --admin %s?)\n", e.what(), o.admin.c_str());
  }
  return std::nullopt;
}

// Prints the JSON answer raw (--json) or through `pretty`.
int show(const Options& o, const dog::admin::HttpResult& r, std::string (*pretty)(const nlohmann::json&, bool)) {
  if (o.json) {
    std::fwrite(r.body.data(), 1, r.body.size(), stdout);
    return 0;
  }
  auto j = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    std::fprintf(stderr, "dogctl: the node's answer is not JSON\n");
    return 1;
  }
  std::fputs(pretty(j, o.full).c_str(), stdout);
  return 0;
}

// `keys`: every endpoint's node and keys, checked against the live members, then the step.
int keys_command(Options o, const std::string& op) {
  const auto admins = split(o.admin);
  if (admins.empty()) return 2;
  std::map<std::string, nlohmann::json> by_node;  // node -> its /keys answer
  std::map<std::string, std::string> endpoint_of;
  for (const auto& a : admins) {
    Options one = o;
    one.admin = a;
    auto r = call(one, "GET", "/keys");
    if (!r) return 1;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.contains("node")) return 1;
    const std::string node = j["node"].get<std::string>();
    by_node[node] = j;
    endpoint_of[node] = a;
  }
  Options first = o;
  first.admin = admins[0];
  auto m = call(first, "GET", "/members");
  if (!m) return 1;
  std::set<std::string> missing;
  const auto members = nlohmann::json::parse(m->body, nullptr, false);
  if (members.is_discarded() || !members.contains("members")) return 1;
  for (const auto& x : members["members"]) {
    const std::string state = x["state"].get<std::string>();
    if ((state == "alive" || state == "suspect") && !by_node.count(x["name"].get<std::string>()))
      missing.insert(x["name"].get<std::string>());
  }
  std::string missing_list;
  for (const auto& n : missing) missing_list += (missing_list.empty() ? "" : ", ") + n;

  if (op == "list") {
    std::map<std::string, std::pair<int, int>> seen;  // fingerprint -> (installed on, primary on)
    for (const auto& [node, j] : by_node)
      for (const auto& k : j["keys"]) {
        auto& s = seen[k["fingerprint"].get<std::string>()];
        ++s.first;
        if (k["primary"].get<bool>()) ++s.second;
      }
    std::vector<std::vector<std::string>> rows;
    const std::string total = std::to_string(by_node.size());
    for (const auto& [fp, s] : seen)
      rows.push_back({fp, std::to_string(s.first) + "/" + total, std::to_string(s.second) + "/" + total});
    std::fputs(dog::admin::table({"Key", "Installed", "Primary"}, rows).c_str(), stdout);
    if (!missing.empty()) std::fprintf(stderr, "dogctl: members not reached (no --admin endpoint given): %s\n", missing_list.c_str());
    return missing.empty() ? 0 : 1;
  }
  if (!missing.empty() && op != "install") {
    std::fprintf(stderr, "dogctl: refusing keys %s: live members not reached: %s; give every member's admin endpoint "
                 "in --admin (comma-separated)\n", op.c_str(), missing_list.c_str());
    return 1;
  }
  if (o.key == "-") std::getline(std::cin, o.key);
  int rc = 0;
  for (const auto& [node, endpoint] : endpoint_of) {
    Options one = o;
    one.admin = endpoint;
    try {
      auto r = http_call(endpoint, "POST", "/keys/" + op, std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000)), 64 << 20, o.key + "\n");
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      if (r.status != 200 || j.is_discarded()) {
        std::fprintf(stderr, "%s: %d %s", node.c_str(), r.status, r.body.c_str());
        rc = 1;
        continue;
      }
      std::printf("%s: %s done%s\n", node.c_str(), op.c_str(),
                  j.value("persisted", false) ? "" : (" (in memory only: " + j.value("file_error", std::string()) + ")").c_str());
    } catch (const dog::admin::AdminCallError& e) {
      std::fprintf(stderr, "%s: %s\n", node.c_str(), e.what());
      rc = 1;
    }
  }
  if (!missing.empty())
    std::fprintf(stderr, "dogctl: warning: installed on %zu nodes only; also install it on: %s\n", by_node.size(),
                 missing_list.c_str());
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"dogctl: inspect and drain dog nodes through their admin endpoint (--admin)"};
  cli.require_subcommand(1);
  Options o;
  cli.add_option("--admin", o.admin, "the node's admin endpoint HOST:PORT")->envname("DOG_ADMIN")->capture_default_str();
  cli.add_option("--timeout", o.timeout_s, "seconds to wait for the node")->check(CLI::Range(0.1, 600.0))->capture_default_str();
  cli.add_flag("--json", o.json, "print the node's JSON answer as is");
  auto* members = cli.add_subcommand("members", "the members this node sees, with their state and load");
  auto* where = cli.add_subcommand("where", "an object's owner (by hash) and the node it is live on");
  where->add_option("namespace", o.ns, "the namespace binding, e.g. LOBBY")->required();
  where->add_option("name", o.name, "the object's name (as id_from_name takes it)")->required();
  auto* objects = cli.add_subcommand("objects", "the objects live on this node");
  objects->add_option("namespace", o.ns, "only this namespace");
  objects->add_flag("--full", o.full, "full 64-character ids");
  objects->add_option("--limit", o.limit, "list at most this many objects")->check(CLI::Range(1, 100000))->capture_default_str();
  auto* drain = cli.add_subcommand("drain", "start this node's drain (leave, close sockets with 1001, exit 0)");
  auto* keygen = cli.add_subcommand("keygen", "print a new cluster key (base64, 32 bytes)");
  auto* keys = cli.add_subcommand("keys", "cluster key rotation on every node given in --admin (comma-separated)");
  keys->require_subcommand(1);
  auto* keys_list = keys->add_subcommand("list", "each key (by fingerprint) and on how many nodes it is installed and primary");
  std::vector<std::pair<std::string, CLI::App*>> key_ops;
  for (const char* op : {"install", "use", "remove"}) {
    auto* sub = keys->add_subcommand(op, std::string(op) == "install" ? "install KEY on every node (it decrypts from now on)"
                                         : std::string(op) == "use"   ? "make KEY the one that encrypts, on every node"
                                                                      : "remove KEY (not the primary) from every node");
    sub->add_option("key", o.key, "base64 key as keygen prints it, or - to read it from stdin")->required();
    key_ops.emplace_back(op, sub);
  }
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }

  if (keys_list->parsed()) return keys_command(o, "list");
  for (const auto& [op, sub] : key_ops)
    if (sub->parsed()) return keys_command(o, op);
  if (!split(o.admin).empty()) o.admin = split(o.admin)[0];  // the other commands ask one node
  if (keygen->parsed()) {
    std::printf("%s\n", dog::node::cluster::generate_key().c_str());
    return 0;
  }
  if (members->parsed()) {
    auto r = call(o, "GET", "/members");
    return r ? show(o, *r, [](const nlohmann::json& j, bool) { return dog::admin::members_table(j); }) : 1;
  }
  if (where->parsed()) {
    auto r = call(o, "GET", "/where?ns=" + query_escape(o.ns) + "&name=" + query_escape(o.name));
    return r ? show(o, *r, [](const nlohmann::json& j, bool) { return dog::admin::where_text(j); }) : 1;
  }
  if (objects->parsed()) {
    auto r = call(o, "GET", "/objects?limit=" + std::to_string(o.limit) + (o.ns.empty() ? "" : "&ns=" + query_escape(o.ns)));
    return r ? show(o, *r, dog::admin::objects_table) : 1;
  }
  if (drain->parsed()) {
    auto r = call(o, "POST", "/drain");
    if (!r) return 1;
    std::printf("%s: %s", o.admin.c_str(), r->body.c_str());
    return 0;
  }
  return 2;
}
