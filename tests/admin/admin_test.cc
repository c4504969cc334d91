// The admin endpoint in process: a real Runtime and AdminServer on a loop, asked over real
// loopback HTTP by the same client dogctl uses (node/admin/http_client.h). Also the metrics
// text format, dogctl's tables, and the RPC timing proxy.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>

#include "node/admin/admin.h"
#include "node/admin/dogctl_print.h"
#include "node/admin/http_client.h"
#include "node/admin/rpc_timing.h"
#include "node/cluster/cluster.h"
#include "tests/admin/admin_fixture.h"
#include "tests/rpc/test_host.h"

using namespace dog;
using namespace dog::admin_test;

TEST_CASE("admin metrics: histogram buckets are cumulative, labels escaped, families declared once", "[admin]") {
  admin::Histogram h({0.1, 1});
  h.observe(0.05);
  h.observe(0.1);  // inclusive upper bound
  h.observe(5);
  admin::TextWriter w;
  w.histogram("x_seconds", "help", {{"m", "a\"b\\c\nd"}}, h);
  w.histogram("x_seconds", "help", {{"m", "e"}}, h);
  w.counter("y_total", "two\nlines", 3);
  const auto& t = w.text();
  CHECK(has_line(t, "x_seconds_bucket{m=\"a\\\"b\\\\c\\nd\",le=\"0.1\"} 2"));
  CHECK(has_line(t, "x_seconds_bucket{m=\"a\\\"b\\\\c\\nd\",le=\"1\"} 2"));
  CHECK(has_line(t, "x_seconds_bucket{m=\"e\",le=\"+Inf\"} 3"));
  CHECK(has_line(t, "x_seconds_sum{m=\"e\"} 5.15"));
  CHECK(has_line(t, "x_seconds_count{m=\"e\"} 3"));
  CHECK(has_line(t, "# HELP y_total two lines"));
  CHECK(has_line(t, "# TYPE y_total counter"));
  size_t types = 0;
  for (size_t at = t.find("# TYPE x_seconds "); at != std::string::npos; at = t.find("# TYPE x_seconds ", at + 1)) ++types;
  CHECK(types == 1);
  CHECK(admin::format_value(1.0 / 0.0) == "+Inf");
  CHECK(admin::format_value(12345678) == "12345678");
}

TEST_CASE("admin: query values are percent-decoded and control characters refused", "[admin]") {
  CHECK(admin::percent_decode("a%20b%2Fc") == "a b/c");
  CHECK(admin::percent_decode("caf%C3%A9") == "caf\xC3\xA9");
  CHECK_FALSE(admin::percent_decode("bad%2"));
  CHECK_FALSE(admin::percent_decode("bad%zz"));
  CHECK_FALSE(admin::percent_decode("nl%0A"));
  CHECK(admin::query_escape("a b/é") == "a%20b%2F%C3%A9");
  CHECK(admin::percent_decode(admin::query_escape("room #1 & co")) == "room #1 & co");
}

TEST_CASE("admin: healthz answers, readyz follows the phase with the reason", "[admin]") {
  Node n;
  auto h = n.call("GET", "/healthz");
  CHECK(h.status == 200);
  CHECK(h.body == "ok\n");
  CHECK(n.call("HEAD", "/healthz").body.empty());
  auto r = n.call("GET", "/readyz");
  CHECK(r.status == 503);
  CHECK(r.body == "starting\n");
  n.server.set_phase(admin::Phase::kJoining);
  CHECK(n.call("GET", "/readyz").body == "joining the cluster\n");
  n.server.set_phase(admin::Phase::kServing);
  r = n.call("GET", "/readyz");
  CHECK(r.status == 200);
  CHECK(r.body == "ready\n");
  n.server.set_phase(admin::Phase::kDraining);
  r = n.call("GET", "/readyz");
  CHECK(r.status == 503);
  CHECK(r.body == "draining\n");
}

TEST_CASE("admin: unknown paths are 404, wrong methods 405 with Allow", "[admin]") {
  Node n;
  CHECK(n.call("GET", "/nope").status == 404);
  CHECK(n.call("GET", "/metrics/x").status == 404);
  auto r = n.call("POST", "/metrics");
  CHECK(r.status == 405);
  CHECK(r.header("Allow") == "GET, HEAD");
  r = n.call("GET", "/drain");
  CHECK(r.status == 405);
  CHECK(r.header("Allow") == "POST");
  CHECK(n.call("DELETE", "/members").status == 405);
}

TEST_CASE("admin: POST /drain runs the drain once and answers 202", "[admin]") {
  Node n;
  CHECK(n.call("POST", "/drain").status == 503);  // no drain wired
  int drains = 0;
  n.server.set_drain([&] {
    ++drains;
    n.server.set_phase(admin::Phase::kDraining);
  });
  n.server.set_phase(admin::Phase::kServing);
  auto r = n.call("POST", "/drain");
  CHECK(r.status == 202);
  CHECK(drains == 1);
  CHECK(n.call("POST", "/drain").status == 202);
  CHECK(drains == 1);
  CHECK(n.call("GET", "/readyz").status == 503);
}

TEST_CASE("admin: /objects and /where show live objects, their Group and sockets", "[admin]") {
  Node n;
  auto& lobby = n.runtime.env()["LOBBY"];
  auto& room = n.runtime.env()["ROOM"];
  const std::string gid = lobby.id_from_name("main").hex();
  n.runtime.group(lobby, gid);
  const std::string sid = room.id_from_name("r1").hex();
  n.runtime.replica(room, sid);

  auto all = n.get_json("/objects");
  REQUIRE(all["objects"].size() == 2);
  auto rooms = n.get_json("/objects?ns=ROOM");
  REQUIRE(rooms["objects"].size() == 1);
  CHECK(rooms["objects"][0]["id"] == sid);
  CHECK(rooms["objects"][0]["kind"] == "replica");
  CHECK(rooms["objects"][0]["sockets"] == 0);
  auto groups = n.get_json("/objects?ns=LOBBY");
  REQUIRE(groups["objects"].size() == 1);
  CHECK(groups["objects"][0]["id"] == gid);
  CHECK(groups["objects"][0]["replicas"] == 0);
  CHECK(n.get_json("/objects?ns=NOPE", 404)["error"] == "unknown namespace NOPE");
  CHECK(n.get_json("/objects?ns=%zz", 400).contains("error"));

  auto w = n.get_json("/where?ns=LOBBY&name=main");
  CHECK(w["id"] == gid);
  CHECK(w["live"] == true);
  CHECK(w["host"] == "local");  // a single node answers as "local"
  CHECK(w["owner"] == "local");
  auto other = n.get_json("/where?ns=LOBBY&name=other%20room");
  CHECK(other["name"] == "other room");
  CHECK(other["live"] == false);
  CHECK(other["host"].is_null());
  CHECK(n.get_json("/where?ns=LOBBY&id=" + gid)["live"] == true);
  CHECK(n.get_json("/where?ns=LOBBY&id=abc", 400).contains("error"));
  CHECK(n.get_json("/where?ns=LOBBY", 400).contains("error"));
  CHECK(n.get_json("/where?ns=NOPE&name=x", 404).contains("error"));

  // Without a cluster the membership is empty.
  auto m = n.get_json("/members");
  CHECK(m["members"].empty());
}

TEST_CASE("admin: /metrics counts objects per namespace, loop lag and the process", "[admin]") {
  Node n;
  auto& room = n.runtime.env()["ROOM"];
  const std::string sid = room.id_from_name("r1").hex();
  n.runtime.replica(room, sid);
  n.runtime.replica(room, room.id_from_name("r2").hex());
  REQUIRE(n.runtime.evict_if_idle(room, sid));
  // Wait for a few loop-lag ticks (10 ms interval here).
  for (int i = 0; i < 3000 && n.call("GET", "/healthz").status == 200; ++i) {
    auto t = n.call("GET", "/metrics").body;
    if (t.find("dog_loop_lag_seconds_count 0\n") == std::string::npos) break;
  }
  auto r = n.call("GET", "/metrics");
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  const auto& t = r.body;
  CHECK(has_line(t, "dog_objects_live{namespace=\"ROOM\",kind=\"replica\"} 1"));
  CHECK(has_line(t, "dog_objects_activated_total{namespace=\"ROOM\",kind=\"replica\"} 2"));
  CHECK(has_line(t, "dog_objects_evicted_total{namespace=\"ROOM\",kind=\"replica\"} 1"));
  CHECK(has_line(t, "dog_objects_live{namespace=\"LOBBY\",kind=\"group\"} 0"));
  CHECK(has_line(t, "# TYPE dog_loop_lag_seconds histogram"));
  CHECK(t.find("dog_loop_lag_seconds_count 0\n") == std::string::npos);
  CHECK(n.server.render_metrics().find("dog_loop_lag_seconds_bucket{le=\"+Inf\"}") != std::string::npos);
  CHECK(t.find("process_resident_memory_bytes ") != std::string::npos);
  CHECK(t.find("process_open_fds ") != std::string::npos);
  CHECK(t.find("dog_members") == std::string::npos);  // no cluster, no membership families
  CHECK(has_line(t, "dog_ready 0"));                 // still "starting"
  // Every sample line is `name{labels} value` with a numeric value.
  size_t samples = 0;
  for (size_t at = 0; at < t.size();) {
    size_t end = t.find('\n', at);
    std::string line = t.substr(at, end - at);
    at = end + 1;
    if (line.empty() || line[0] == '#') continue;
    ++samples;
    auto sp = line.rfind(' ');
    REQUIRE(sp != std::string::npos);
    std::string v = line.substr(sp + 1);
    CHECK((v == "+Inf" || v.find_first_not_of("0123456789.e+-") == std::string::npos));
  }
  CHECK(samples > 30);
}

TEST_CASE("admin: the front door's counters appear once it is attached", "[admin]") {
  Node n;
  node::HttpServer front(n.loop, node::HttpConfig::defaults(),
                         [](Request&) -> Task<Response> { co_return Response::text(200, "hi"); });
  front.listen(node::parse_endpoint("127.0.0.1:0"));
  n.server.set_front_door(&front);
  const std::string app = "127.0.0.1:" + std::to_string(front.local_endpoint().port());
  auto f = std::async(std::launch::async, [&] { return admin::http_call(app, "GET", "/"); });
  CHECK(pump(n.loop, f).body == "hi");
  auto t = n.call("GET", "/metrics").body;
  CHECK(has_line(t, "dog_http_requests_total 1"));
  CHECK(has_line(t, "dog_websockets_open 0"));
  CHECK(has_line(t, "dog_websocket_slow_consumer_closes_total 0"));
}

TEST_CASE("admin: the RPC timing proxy forwards calls and counts them per method and outcome", "[admin]") {
  node::Loop loop;
  rpc::testing::HostState state;
  state.name = "a";
  auto metrics = std::make_shared<admin::RpcMetrics>();
  rpc::wire::Node::Client client = admin::timed(rpc::testing::make_test_node(state, loop.timer()), metrics);
  auto g = client.gossipRequest();
  g.setTopic("t");
  g.setPayload(kj::StringPtr("hello").asBytes());
  auto reply = g.send().wait(loop.wait_scope());
  CHECK(kj::str(reply.getReply().asChars()) == "a:hello");  // the inner node's answer, unchanged
  auto bad = client.identifyGroupRequest();  // the test host does not implement it
  CHECK_THROWS(bad.send().wait(loop.wait_scope()));
  const auto& m = metrics->methods();
  REQUIRE(m.count("gossip"));
  CHECK(m.at("gossip").outcomes.at("ok") == 1);
  CHECK(m.at("gossip").seconds.count() == 1);
  REQUIRE(m.count("identifyGroup"));
  CHECK(m.at("identifyGroup").outcomes.at("unimplemented") == 1);
  CHECK(admin::node_method_name(15) == "lookup");
}

TEST_CASE("dogctl tables: members like serf members, objects, where", "[admin]") {
  auto members = nlohmann::json::parse(R"({"self":"n1","members":[
    {"name":"n1","address":"10.0.0.1:7946","state":"alive","incarnation":1,"load":2,"http":"10.0.0.1:8080"},
    {"name":"node-two","address":"10.0.0.2:7946","state":"suspect","incarnation":3,"load":0,"http":""}]})");
  CHECK(admin::members_table(members) ==
        "Node      Address        Status   Incarnation  Load  HTTP\n"
        "n1        10.0.0.1:7946  alive    1            2     10.0.0.1:8080\n"
        "node-two  10.0.0.2:7946  suspect  3            0\n");
  auto where = nlohmann::json::parse(R"({"namespace":"LOBBY","name":"x","id":"ab","owner":"n1","host":null})");
  CHECK(admin::where_text(where) == "name:   LOBBY x\nid:     ab\nowner:  n1\nhost:   (not live)\n");
  auto objects = nlohmann::json::parse(
      R"({"objects":[{"namespace":"ROOM","kind":"replica","id":"0123456789abcdef0123","group":"g","sockets":2,"node":"n1"}]})");
  CHECK(admin::objects_table(objects, false) ==
        "Namespace  Kind     Id                Group  Sockets  Node\n"
        "ROOM       replica  0123456789abcdef  g      2        n1\n");
}

TEST_CASE("admin: /keys lists, installs, uses and removes cluster keys and rewrites the key file", "[admin]") {
  Node n;
  const std::string k1 = node::cluster::generate_key(), k2 = node::cluster::generate_key();
  auto path = std::filesystem::temp_directory_path() / ("dog-admin-keys-" + std::to_string(::getpid()));
  std::ofstream(path) << k1 << "\n";
  node::cluster::ClusterOptions o;
  o.bind = "127.0.0.1:0";
  o.name = "a";
  o.preset = "local";
  o.key_file = path.string();
  rpc::testing::HostState state;
  node::cluster::Cluster cluster(n.loop, o, rpc::testing::make_test_node(state, n.loop.timer()), nullptr);
  cluster.start();
  cluster.joined().wait(n.loop.wait_scope());
  CHECK(n.call("GET", "/keys").status == 409);  // no cluster attached yet
  n.server.set_cluster(&cluster);
  auto fp = [](const std::string& b64) {
    return admin::key_fingerprint(node::cluster::parse_key_text(b64, "k")[0]);
  };
  auto post = [&](const std::string& op, const std::string& body) {
    auto f = std::async(std::launch::async, [&] {
      return admin::http_call(n.addr, "POST", "/keys/" + op, std::chrono::seconds(10), 1 << 20, body);
    });
    return pump(n.loop, f);
  };
  auto file_keys = [&] {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return node::cluster::parse_key_text(text.str(), path.string());
  };

  auto list = n.get_json("/keys");
  REQUIRE(list["keys"].size() == 1);
  CHECK(list["keys"][0]["fingerprint"] == fp(k1));
  CHECK(list["keys"][0]["primary"] == true);
  CHECK(list.dump().find(k1) == std::string::npos);  // keys never leave the node

  CHECK(post("use", k2).status == 409);  // not installed yet
  CHECK(post("install", "not base64!").status == 400);
  CHECK(post("install", k1 + "\n" + k2).status == 400);  // exactly one key
  auto r = post("install", k2 + "\n");
  REQUIRE(r.status == 200);
  auto j = nlohmann::json::parse(r.body);
  CHECK(j["persisted"] == true);
  CHECK(j["keys"].size() == 2);
  CHECK(file_keys().size() == 2);
  CHECK(post("install", k2).status == 200);  // idempotent
  CHECK(cluster.keys().size() == 2);

  REQUIRE(post("use", k2).status == 200);
  CHECK(cluster.keys()[0] == node::cluster::parse_key_text(k2, "k")[0]);
  CHECK(file_keys()[0] == node::cluster::parse_key_text(k2, "k")[0]);  // the file's first line encrypts
  CHECK(post("remove", k2).status == 409);  // the primary cannot go
  REQUIRE(post("remove", k1).status == 200);
  CHECK(cluster.keys().size() == 1);
  CHECK(file_keys().size() == 1);
  list = n.get_json("/keys");
  CHECK(list["keys"][0]["fingerprint"] == fp(k2));
  CHECK(n.call("GET", "/keys/use").status == 405);
  std::filesystem::remove(path);
}
