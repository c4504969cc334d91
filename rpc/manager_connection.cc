// ConnectionManager's per-connection pieces (manager_connection.h).
#include "rpc/manager_connection.h"

namespace dog::rpc {

using capnp::rpc::twoparty::Side;

const ConnectionManager::UsePolicy::Disposer ConnectionManager::UsePolicy::kRootDisposer{true};
const ConnectionManager::UsePolicy::Disposer ConnectionManager::UsePolicy::kCountedDisposer{false};

ConnectionManager::Connection::Connection(uint64_t id, SecureSession session, Side side,
                                          capnp::ReaderOptions options, wire::Node::Client local,
                                          size_t flow_limit_words, size_t max_queued,
                                          ManagerStats& stats, std::function<void()> overflow)
    : id(id),
      stream(kj::mv(session.stream)),
      gate(*stream, max_queued, stats, std::move(overflow)),
      peer(kj::mv(session.peer_name)),
      dialled(side == Side::CLIENT),
      policy(UsePolicy::create()),
      network(gate, side, options),
      rpc(capnp::makeRpcServer(network, policy->root_export(kj::mv(local)))) {
  gate.watch(network);
  rpc.setFlowLimit(flow_limit_words);
  capnp::MallocMessageBuilder msg(8);
  auto vat = msg.initRoot<capnp::rpc::twoparty::VatId>();
  vat.setSide(side == Side::CLIENT ? Side::SERVER : Side::CLIENT);
  // The peer's Node is wrapped once it has settled, so the membrane never has to cache a
  // resolution (which would count as a use forever). Calls made before wait for it.
  bootstrap = rpc.bootstrap(vat);
  ready = bootstrap.whenResolved()
              .then([this] {
                kj::Own<capnp::ClientHook> hook = capnp::ClientHook::from(kj::cp(bootstrap));
                for (;;) {
                  KJ_IF_MAYBE(next, hook->getResolved()) { hook = next->addRef(); }
                  else break;
                }
                remote = policy->root_import(capnp::Capability::Client(kj::mv(hook)))
                             .castAs<wire::Node>();
                bootstrap = nullptr;
                remote_ready = true;
              })
              .fork();
}

}  // namespace dog::rpc
