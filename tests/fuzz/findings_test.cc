// Checks for what the fuzz targets found that a replay alone cannot catch (the input runs either
// way; only its cost differs). Each names the finding in tests/fuzz/README.md.
#include <catch2/catch.hpp>

#include <capnp/message.h>
#include <kj/exception.h>

#include "node/runtime/wire_util.h"

namespace {

dog::rpc::wire::RequestHead::Reader head_with(capnp::MallocMessageBuilder& msg, unsigned headers) {
  auto head = msg.initRoot<dog::rpc::wire::RequestHead>();
  head.setMethod("GET");
  head.setPath("/");
  head.initHeaders(headers);
  return head.asReader();
}

}  // namespace

// node_calls: a list of empty Header structs costs one word per element against the traversal
// limit, so 218 bytes from a peer (regressions/node_calls/million_empty_headers) became a 64 MiB
// vector of ~1 M Headers in request_of.
TEST_CASE("fuzz finding: a relayed request with too many headers is refused") {
  capnp::MallocMessageBuilder ok, too_many;
  auto req = dog::wire::request_of(head_with(ok, dog::wire::kMaxRelayedHeaders), {});
  CHECK(req.headers.size() == dog::wire::kMaxRelayedHeaders);
  CHECK_THROWS_AS(dog::wire::request_of(head_with(too_many, dog::wire::kMaxRelayedHeaders + 1), {}), kj::Exception);
}
