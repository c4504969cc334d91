// dogctl — the operator's client for a node's admin endpoint (`APP --admin HOST:PORT`).
//
//   dogctl [--admin HOST:PORT] [--json] members          the membership as this node sees it
//   dogctl [--admin HOST:PORT] [--json] where NS NAME    the object's owner and where it is live
//   dogctl [--admin HOST:PORT] [--json] objects [NS]     the objects live on that node
//   dogctl [--admin HOST:PORT] drain                     starts that node's drain (as SIGTERM)
//   dogctl keygen                                        a new cluster key (as `APP keygen`)
//
// --admin defaults to 127.0.0.1:9090, or DOG_ADMIN. Exit codes: 0 done; 1 the node could not
// be reached or refused (its answer is printed on stderr); 2 bad usage.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

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
  std::string ns, name;
};

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
  auto* drain = cli.add_subcommand("drain", "start this node's drain (leave, close sockets with 1001, exit 0)");
  auto* keygen = cli.add_subcommand("keygen", "print a new cluster key (base64, 32 bytes)");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }

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
    auto r = call(o, "GET", o.ns.empty() ? "/objects" : "/objects?ns=" + query_escape(o.ns));
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
