#include "node/runtime/wire_util.h"

#include <sodium.h>

#include <kj/debug.h>

namespace dog::wire {

std::optional<routing::ObjectId> id_of(const std::string& hex) {
  std::array<uint8_t, routing::ObjectId::kSize> b{};
  if (hex.size() != b.size() * 2) return std::nullopt;
  size_t n = 0;
  if (sodium_hex2bin(b.data(), b.size(), hex.data(), hex.size(), nullptr, &n, nullptr) != 0 || n != b.size())
    return std::nullopt;
  return routing::ObjectId(b);
}

std::string hex_of(capnp::Data::Reader bytes) {
  if (bytes.size() != routing::ObjectId::kSize) return {};
  char out[routing::ObjectId::kSize * 2 + 1];
  sodium_bin2hex(out, sizeof out, bytes.begin(), bytes.size());
  return std::string(out, routing::ObjectId::kSize * 2);
}

kj::Array<kj::byte> bytes_of_hex(const std::string& hex) {
  auto id = id_of(hex);
  if (!id) return kj::heapArray<kj::byte>(0);
  return kj::heapArray<kj::byte>(id->bytes().data(), id->bytes().size());
}

void set_ref(rpc::wire::ObjectRef::Builder b, const std::string& ns, const std::string& hex) {
  b.setNs(ns);
  b.setId(bytes_of_hex(hex));
}

void set_head(rpc::wire::RequestHead::Builder b, const http::Request& req) {
  b.setMethod(req.method);
  b.setPath(req.target);
  auto hs = b.initHeaders(static_cast<unsigned>(req.headers.size()));
  unsigned i = 0;
  for (const auto& h : req.headers) {
    hs[i].setName(h.name);
    hs[i].setValue(h.value);
    ++i;
  }
}

http::Request request_of(rpc::wire::RequestHead::Reader head, capnp::Data::Reader body) {
  http::Request req;
  req.method = head.getMethod();
  req.target = head.getPath();
  auto headers = head.getHeaders();
  KJ_REQUIRE(headers.size() <= kMaxRelayedHeaders, "too many headers in a relayed request", headers.size());
  for (auto h : headers) req.headers.add(h.getName(), h.getValue());
  req.body.assign(reinterpret_cast<const char*>(body.begin()), body.size());
  return req;
}

}  // namespace dog::wire
