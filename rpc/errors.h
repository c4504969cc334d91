// Error kinds for rpc/ callers, named for what the caller should do.
//
// Cap'n Proto carries kj::Exception::Type across the wire, and rpc/ raises only those types.
// Its own conditions are typed, not described: each carries a marker (the exception's file
// pointer, set to a private static in errors.cc) and a code (its line). Neither survives the
// network: Cap'n Proto rebuilds a remote exception with file "(remote)", so a peer that relays
// "dog-rpc: peer declared dead" in its text is classified by its type alone and can never make
// us believe a node is dead. Nothing is matched by substring.
//
//   kind           kj type        caller's reaction
//   kFailed        FAILED         give up on this request (a bug or a refusal); do not retry
//   kOverloaded    OVERLOADED     back off, then retry (peer's in-flight cap, our own cap)
//   kDeadline      OVERLOADED     the call's deadline passed; the peer may still be working
//   kDisconnected  DISCONNECTED   the connection broke; retry once on a fresh connection
//   kPeerDead      DISCONNECTED   membership declared the peer dead; re-route, do not retry it
//   kUnimplemented UNIMPLEMENTED  the peer is older/newer; fall back to another method
//
// kDeadline and kPeerDead are only ever local verdicts (raised_locally() is true); a remote
// OVERLOADED or DISCONNECTED is kOverloaded or kDisconnected.
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

// True for the exceptions below (raised by this process's rpc/), false for anything else,
// in particular for every exception that came over the network.
bool raised_locally(const kj::Exception& e);

// The exceptions rpc/ raises for its own conditions.
kj::Exception deadline_exceeded();
kj::Exception peer_dead(std::string_view peer);
kj::Exception too_many_in_flight(std::string_view peer);
kj::Exception in_backoff(std::string_view peer);
kj::Exception wrong_node(std::string_view expected, std::string_view answered);
kj::Exception connect_timed_out(std::string_view peer);
kj::Exception disconnected(std::string_view what);
kj::Exception queue_full(std::string_view peer);

}  // namespace dog::rpc
