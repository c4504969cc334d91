#include "node/admin/rpc_timing.h"

#include <capnp/any.h>
#include <capnp/capability.h>
#include <capnp/schema.h>
#include <chrono>

namespace dog::admin {

void RpcMetrics::record(const std::string& method, const std::string& outcome, double seconds) {
  auto& m = methods_[method];
  ++m.outcomes[outcome];
  m.seconds.observe(seconds);
}

std::string node_method_name(uint16_t id) {
  auto methods = capnp::Schema::from<rpc::wire::Node>().getMethods();
  if (id < methods.size()) return methods[id].getProto().getName();
  return "unknown";  // a peer chooses the id: one label for all, never one per id
}

namespace {

std::string outcome_of(const kj::Exception& e) {
  switch (e.getType()) {
    case kj::Exception::Type::FAILED: return "failed";
    case kj::Exception::Type::OVERLOADED: return "overloaded";
    case kj::Exception::Type::DISCONNECTED: return "disconnected";
    case kj::Exception::Type::UNIMPLEMENTED: return "unimplemented";
  }
  return "failed";
}

// Records once: at completion, or as "cancelled" if the call is dropped first.
struct CallRecord {
  std::shared_ptr<RpcMetrics> metrics;
  std::string method;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  bool done = false;
  void finish(const std::string& outcome) {
    if (done) return;
    done = true;
    metrics->record(method, outcome,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  ~CallRecord() { finish("cancelled"); }
};

class TimedNode final : public capnp::Capability::Server {
 public:
  TimedNode(capnp::Capability::Client inner, std::shared_ptr<RpcMetrics> metrics)
      : inner_(kj::mv(inner)), metrics_(std::move(metrics)) {}

  DispatchCallResult dispatchCall(uint64_t interface_id, uint16_t method_id,
                                  capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) override {
    auto params = context.getParams();
    auto request = inner_.typelessRequest(interface_id, method_id, params.targetSize());
    request.set(params);
    context.releaseParams();
    auto rec = kj::heap<CallRecord>();
    rec->metrics = metrics_;
    rec->method = interface_id == capnp::typeId<rpc::wire::Node>() ? node_method_name(method_id) : "unknown";
    auto& r = *rec;
    auto done = context.tailCall(kj::mv(request))
                    .then([&r]() { r.finish("ok"); },
                          [&r](kj::Exception&& e) {
                            r.finish(outcome_of(e));
                            kj::throwFatalException(kj::mv(e));  // the caller sees the inner error
                          })
                    .attach(kj::mv(rec));
    return {kj::mv(done), false};  // wire::Node has no streaming methods
  }

 private:
  capnp::Capability::Client inner_;
  std::shared_ptr<RpcMetrics> metrics_;
};

}  // namespace

rpc::wire::Node::Client timed(rpc::wire::Node::Client inner, std::shared_ptr<RpcMetrics> metrics) {
  capnp::Capability::Client proxy = kj::heap<TimedNode>(kj::mv(inner), std::move(metrics));
  return proxy.castAs<rpc::wire::Node>();
}

}  // namespace dog::admin
