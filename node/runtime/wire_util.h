// Conversions between the runtime's values and rpc/dog.capnp builders and readers.
#pragma once

#include <optional>
#include <string>

#include <kj/array.h>

#include "dog/http.h"
#include "routing/object_id.h"
#include "rpc/dog.capnp.h"

namespace dog::wire {

// A 64-hex-character object id as routing's id (any namespace), or nullopt if malformed.
std::optional<routing::ObjectId> id_of(const std::string& hex);
// 32 bytes from the wire as 64 hex characters; "" if the size is wrong.
std::string hex_of(capnp::Data::Reader bytes);
// The 32 bytes of a hex id (empty array if malformed).
kj::Array<kj::byte> bytes_of_hex(const std::string& hex);
inline kj::ArrayPtr<const kj::byte> bytes_of(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}
void set_ref(rpc::wire::ObjectRef::Builder b, const std::string& ns, const std::string& hex);
void set_head(rpc::wire::RequestHead::Builder b, const http::Request& req);
// At most this many headers in a relayed request (the front door's HttpConfig::max_headers is
// 100 by default). The traversal limit alone allowed ~1 M: a list of empty structs costs one
// word per element, so 218 bytes from a peer became a 64 MiB vector of Headers (fuzz_node_calls).
constexpr unsigned kMaxRelayedHeaders = 1024;
// The request a head describes; throws (a failed call) if it has more than kMaxRelayedHeaders
// headers. Sizes are bounded by the caller's reader limits (the connection's traversal limit).
http::Request request_of(rpc::wire::RequestHead::Reader head, capnp::Data::Reader body);

}  // namespace dog::wire
