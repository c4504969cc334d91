// Target: Cap'n Proto `Node` calls (rpc/dog.capnp) as a peer makes them, under the limits every
// connection reads with (rpc::ManagerConfig: traversal_limit_words, nesting_limit), dispatched to
// the runtime's real service (node/runtime/service.cc) on a one-node cluster.
//
// Input: [method][a Cap'n Proto message, flat (segment table + segments)]. The message is read
// with our ReaderOptions, its root is copied into the params of Node method `method % 16` (the
// copy walks the message under the traversal limit, as reading it on a connection does), and the
// call goes to the service; the target runs the loop until the call completes or nothing is
// left to run. A malformed message, a wrong params struct, a capability without a cap table, an
// unknown namespace or a bad id must all end as a failed call, never a crash.
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <kj/debug.h>

#include "membership/rng.h"
#include "routing/routing_table.h"
#include "rpc/connection_manager.h"
#include "tests/fuzz/runtime_driver.h"

namespace dog::fuzz {
namespace {

// The cluster is this one node: every id is owned here.
struct OneNodePort final : ClusterPort {
  std::string name = "fuzz-node";
  rpc::ConnectionManager* mgr = nullptr;
  std::optional<routing::RoutingTable> tbl;
  OneNodePort() {
    routing::View v;
    v.epoch = 1;
    v.members.push_back({name, 1.0});
    auto r = routing::RoutingTable::build(v);
    fuzz_check(r.table.has_value(), "a one-node routing table");
    tbl.emplace(std::move(*r.table));
  }
  const std::string& self() const override { return name; }
  std::string owner(const routing::ObjectId& id) const override { return std::string(tbl->owner(id).node_id); }
  const routing::RoutingTable& table() const override { return *tbl; }
  std::vector<std::string> members() const override { return {name}; }
  bool is_member(const std::string& n) const override { return n == name; }
  uint32_t load_of(const std::string&) const override { return 0; }
  void publish_load(uint32_t) override {}
  rpc::ConnectionManager& rpc() override { return *mgr; }
};

struct Lobby final : Group {
  Namespace& link(Env& env) override { return env["ROOM"]; }
};

struct Room final : Replica {
  Namespace& link(Env& env) override { return env["LOBBY"]; }
  Task<Response> receive(Request& req) override {
    if (req.is_websocket_upgrade()) co_return co_await connect(req);
    co_return Response::text(200, "room " + uid());
  }
  Task<void> onmessage(Socket& s, std::string_view data) override {
    if (data == "b") co_await s.broadcast(std::string(data));
    else s.send(std::string(data));
  }
  Task<Json> ongossip(const Json& msg) override { co_return msg; }
};

struct NodeUnderTest {
  node::Loop loop;
  OneNodePort port;
  membership::Keyring ring{membership::Keyring::Key{}};
  membership::Rng rng{1};
  std::unique_ptr<Runtime> rt;
  std::unique_ptr<rpc::ConnectionManager> mgr;
  std::optional<rpc::wire::Node::Client> service;
  rpc::ManagerConfig limits;

  NodeUnderTest() {
    rt = std::make_unique<Runtime>(loop, RuntimeConfig{}, &port);
    rt->add_group("LOBBY", [] {
      auto g = std::make_shared<Lobby>();
      g->limit = 2;
      return std::shared_ptr<Group>(g);
    });
    rt->add_replica("ROOM", [] { return std::shared_ptr<Replica>(std::make_shared<Room>()); });
    limits.node_name = port.name;
    mgr = std::make_unique<rpc::ConnectionManager>(loop, ring, limits, rt->make_service(), rng);
    port.mgr = mgr.get();
    service = rt->make_service();
  }
};

}  // namespace

int node_calls(const uint8_t* data, size_t size) {
  static NodeUnderTest* node = new NodeUnderTest();  // one node for the whole run
  if (size < 1) return 0;
  const uint16_t method = data[0] % 16;
  const size_t words = (size - 1) / sizeof(capnp::word);
  if (words == 0) return 0;
  auto buf = kj::heapArray<capnp::word>(words);
  std::memcpy(buf.begin(), data + 1, words * sizeof(capnp::word));

  capnp::ReaderOptions options;
  options.traversalLimitInWords = node->limits.traversal_limit_words;
  options.nestingLimit = node->limits.nesting_limit;
  bool done = false;
  kj::Maybe<kj::Promise<void>> call;
  try {
    capnp::FlatArrayMessageReader reader(buf, options);
    auto req = node->service->typelessRequest(capnp::typeId<rpc::wire::Node>(), method, nullptr);
    req.set(reader.getRoot<capnp::AnyPointer>());
    call = req.send()
               .then([&done](capnp::Response<capnp::AnyPointer>&&) { done = true; },
                     [&done](kj::Exception&&) { done = true; })
               .eagerlyEvaluate(nullptr);
  } catch (const kj::Exception&) {
    return 0;  // refused while reading: what a connection does with such a message
  }
  settle(node->loop);
  call = nullptr;  // a call still waiting (a timer, a peer) is cancelled, as when a peer hangs up
  settle(node->loop);
  (void)done;
  return 0;
}

}  // namespace dog::fuzz
