// Error kinds for rpc/ callers, named for what the caller should do.
//
// Cap'n Proto already carries kj::Exception::Type across the wire. rpc/ raises only those types,
// and tags its own conditions in the description so callers can tell them apart:
//
//   kind           kj type        caller's reaction
//   kFailed        FAILED         give up on this request (a bug or a refusal); do not retry
//   kOverloaded    OVERLOADED     back off, then retry (peer's in-flight cap, our own cap)
//   kDeadline      OVERLOADED     the call's deadline passed; the peer may still be working
//   kDisconnected  DISCONNECTED   the connection broke; retry once on a fresh connection
//   kPeerDead      DISCONNECTED   membership declared the peer dead; re-route, do not retry it
//   kUnimplemented UNIMPLEMENTED  the peer is older/newer; fall back to another method
//
// Expected outcomes ("not owner, epoch E") are values in the results, never exceptions.
#pragma once

#include <string_view>

#include <kj/exception.h>

namespace dog::rpc {

enum class ErrorKind {
  kFailed,
  kOverloaded,
  kDeadline,
  kDisconnected,
  kPeerDead,
  kUnimplemented,
};

std::string_view to_string(ErrorKind kind);

// Classifies any exception that came out of an rpc/ promise.
ErrorKind classify(const kj::Exception& e);

// The exceptions rpc/ raises for its own conditions.
kj::Exception deadline_exceeded();
kj::Exception peer_dead(std::string_view peer);
kj::Exception too_many_in_flight(std::string_view peer);
kj::Exception in_backoff(std::string_view peer);

}  // namespace dog::rpc
