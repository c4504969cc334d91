#include "tests/rpc/test_host.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <unordered_set>

#include <kj/debug.h>

namespace dog::rpc::testing {
namespace {

std::string text(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

kj::ArrayPtr<const kj::byte> bytes(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// "/path?a&b" -> numbers a, b (0 if absent).
std::pair<uint64_t, uint64_t> query(std::string_view path) {
  uint64_t a = 0, b = 0;
  auto q = path.find('?');
  if (q == std::string_view::npos) return {0, 0};
  std::string rest(path.substr(q + 1));
  a = std::strtoull(rest.c_str(), nullptr, 10);
  auto amp = rest.find('&');
  if (amp != std::string::npos) b = std::strtoull(rest.c_str() + amp + 1, nullptr, 10);
  return {a, b};
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

class EchoSink final : public wire::WsSink::Server {
 public:
  EchoSink(HostState& s, wire::WsSink::Client to_client) : state_(s), to_client_(kj::mv(to_client)) {}

  kj::Promise<void> send(SendContext context) override {
    ++state_.ws_from_client;
    auto req = to_client_.sendRequest();
    req.setMessage(context.getParams().getMessage());
    return req.send();
  }
  kj::Promise<void> close(CloseContext context) override {
    state_.last_close_code = context.getParams().getCode();
    auto req = to_client_.closeRequest();
    req.setCode(context.getParams().getCode());
    req.setReason(context.getParams().getReason());
    return req.send().ignoreResult();
  }

 private:
  HostState& state_;
  wire::WsSink::Client to_client_;
};

class BodyCall final : public wire::RequestCall::Server {
 public:
  kj::Promise<void> write(WriteContext context) override {
    auto d = context.getParams().getData();
    bytes_ += d.size();
    for (auto b : d) sum_ += b;
    return kj::READY_NOW;
  }
  kj::Promise<void> finish(FinishContext context) override {
    auto r = context.getResults().initResponse();
    r.initHead().setStatus(200);
    r.setBody(bytes(kj::str("bytes=", bytes_, " sum=", sum_).cStr()));
    return kj::READY_NOW;
  }

 private:
  uint64_t bytes_ = 0;
  uint64_t sum_ = 0;
};

class TestNode final : public wire::Node::Server, public kj::TaskSet::ErrorHandler {
 public:
  TestNode(HostState& s, kj::Timer& t) : state_(s), timer_(t), tasks_(*this) {}

  void taskFailed(kj::Exception&& e) override {}

  kj::Promise<void> hello(HelloContext context) override {
    auto h = context.getResults().initHello();
    h.setNodeName(state_.name);
    h.setViewEpoch(state_.view_epoch);
    return kj::READY_NOW;
  }

  kj::Promise<void> identify(IdentifyContext context) override {
    auto p = context.getParams();
    auto r = context.getResults().initResult();
    if (refuse(p.getTarget(), [&] { return r.initNotOwner(); })) return kj::READY_NOW;
    r.setOk();
    return kj::READY_NOW;
  }

  kj::Promise<void> release(ReleaseContext context) override { return kj::READY_NOW; }

  kj::Promise<void> deliver(DeliverContext context) override {
    auto p = context.getParams();
    if (refuse(p.getTarget(), [&] { return context.getResults().initResult().initNotOwner(); })) {
      return kj::READY_NOW;
    }
    ++state_.delivered;
    std::string path = p.getHead().getPath();
    if (path == "/hang") {
      ++state_.hanging;
      context.allowCancellation();  // capnp 0.9.2: without it, a Finish does not cancel
      return kj::Promise<void>(kj::NEVER_DONE).attach(kj::defer([this] { ++state_.cancelled; }));
    }
    if (path == "/raise-peer-dead") {
      // A peer relaying a failure whose text looks like our own verdicts.
      return KJ_EXCEPTION(DISCONNECTED, "dog-rpc: peer declared dead: c");
    }
    if (path == "/raise-deadline") {
      return KJ_EXCEPTION(OVERLOADED, "dog-rpc: deadline exceeded");
    }
    if (path == "/slow") {
      return timer_.afterDelay(state_.slow_delay).then([context]() mutable {
        auto r = context.getResults().initResult().initResponse();
        r.initHead().setStatus(200);
        r.setBody(bytes("slow"));
      });
    }
    if (starts_with(path, "/big")) {
      uint64_t n = query(path).first;
      if (p.hasResponseBody()) {
        auto sink = kj::heap<wire::ByteStream::Client>(p.getResponseBody());
        return stream_out(*sink, n, 0)
            .then([context, &s = *sink]() mutable {
              auto r = context.getResults().initResult().initResponse();
              r.initHead().setStatus(200);
              return s.endRequest().send().ignoreResult();
            })
            .attach(kj::mv(sink));
      }
      auto r = context.getResults().initResult().initResponse();
      r.initHead().setStatus(200);
      auto body = r.initBody(n);
      for (uint64_t i = 0; i < n; ++i) body[i] = kj::byte(i * 31 + 7);
      return kj::READY_NOW;
    }
    auto r = context.getResults().initResult().initResponse();
    r.initHead().setStatus(200);
    r.setBody(bytes("echo:" + text(p.getBody())));
    return kj::READY_NOW;
  }

  kj::Promise<void> open(OpenContext context) override {
    auto p = context.getParams();
    auto r = context.getResults().initResult();
    if (refuse(p.getTarget(), [&] { return r.initNotOwner(); })) return kj::READY_NOW;
    ++state_.delivered;
    r.setCall(kj::heap<BodyCall>());
    return kj::READY_NOW;
  }

  kj::Promise<void> openSocket(OpenSocketContext context) override {
    auto p = context.getParams();
    auto r = context.getResults().initResult();
    if (refuse(p.getTarget(), [&] { return r.initNotOwner(); })) return kj::READY_NOW;
    std::string path = p.getInfo().getHead().getPath();
    auto to_client = p.getToClient();
    if (starts_with(path, "/flood")) {
      auto [n, size] = query(path);
      tasks_.add(flood(to_client, n, size, 0));
    }
    r.setFromClient(kj::heap<EchoSink>(state_, to_client));
    return kj::READY_NOW;
  }

  kj::Promise<void> fanOut(FanOutContext context) override {
    auto m = context.getParams().getMessage();
    std::unordered_set<uint64_t> except;
    for (auto e : m.getExcept()) except.insert(e);
    uint32_t delivered = 0;
    kj::Vector<uint64_t> missing;
    if (m.getAllInGroup()) {
      for (uint64_t id = 0; id < state_.sockets; ++id) delivered += except.count(id) ? 0 : 1;
    } else {
      for (auto id : m.getRecipients()) {
        if (except.count(id)) continue;
        if (id < state_.sockets) ++delivered;
        else missing.add(id);
      }
    }
    state_.fanout_delivered += delivered;
    auto res = context.getResults().initResult();
    res.setDelivered(delivered);
    auto ms = res.initMissing(missing.size());
    for (size_t i = 0; i < missing.size(); ++i) ms.set(i, missing[i]);
    return kj::READY_NOW;
  }

  kj::Promise<void> gossip(GossipContext context) override {
    auto p = context.getParams();
    std::string topic = p.getTopic();
    std::string reply = topic == "stats" ? std::to_string(state_.flood_sent_bytes)
                                         : state_.name + ":" + text(p.getPayload());
    context.getResults().setReply(bytes(reply));
    return kj::READY_NOW;
  }

 private:
  template <typename MakeRefusal>
  bool refuse(wire::ObjectRef::Reader target, MakeRefusal make) {
    if (state_.owns(target.getId())) return false;
    ++state_.refused;
    auto n = make();
    n.setEpoch(state_.view_epoch);
    n.setOwnerHint(state_.owner_hint);
    return true;
  }

  kj::Promise<void> stream_out(wire::ByteStream::Client& sink, uint64_t n, uint64_t done) {
    if (done >= n) return kj::READY_NOW;
    uint64_t len = std::min<uint64_t>(64 * 1024, n - done);
    auto req = sink.writeRequest();
    auto d = req.initData(len);
    for (uint64_t i = 0; i < len; ++i) d[i] = kj::byte((done + i) * 31 + 7);
    return req.send().then([this, &sink, n, done, len] { return stream_out(sink, n, done + len); });
  }

  kj::Promise<void> flood(wire::WsSink::Client sink, uint64_t n, uint64_t size, uint64_t i) {
    if (i >= n) {
      auto req = sink.closeRequest();
      req.setCode(1000);
      req.setReason("flood done");
      return req.send().ignoreResult();
    }
    auto req = sink.sendRequest();
    auto d = req.initMessage().initBinary(size);
    for (uint64_t k = 0; k < size; k += 97) d[k] = kj::byte(i);
    state_.flood_sent_bytes += size;
    return req.send().then([this, sink, n, size, i]() mutable {
      return flood(kj::mv(sink), n, size, i + 1);
    });
  }

  HostState& state_;
  kj::Timer& timer_;
  kj::TaskSet tasks_;
};

}  // namespace

wire::Node::Client make_test_node(HostState& state, kj::Timer& timer) {
  return kj::heap<TestNode>(state, timer);
}

}  // namespace dog::rpc::testing
