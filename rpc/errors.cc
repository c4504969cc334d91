#include "rpc/errors.h"

#include <string>

#include <kj/debug.h>

namespace dog::rpc {
namespace {
constexpr char kDeadlineTag[] = "dog-rpc: deadline exceeded";
constexpr char kPeerDeadTag[] = "dog-rpc: peer declared dead";

bool contains(const kj::Exception& e, const char* tag) {
  return std::string_view(e.getDescription().cStr()).find(tag) != std::string_view::npos;
}
}  // namespace

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kFailed: return "FAILED";
    case ErrorKind::kOverloaded: return "OVERLOADED";
    case ErrorKind::kDeadline: return "DEADLINE";
    case ErrorKind::kDisconnected: return "DISCONNECTED";
    case ErrorKind::kPeerDead: return "PEER_DEAD";
    case ErrorKind::kUnimplemented: return "UNIMPLEMENTED";
  }
  return "FAILED";
}

ErrorKind classify(const kj::Exception& e) {
  switch (e.getType()) {
    case kj::Exception::Type::OVERLOADED:
      return contains(e, kDeadlineTag) ? ErrorKind::kDeadline : ErrorKind::kOverloaded;
    case kj::Exception::Type::DISCONNECTED:
      return contains(e, kPeerDeadTag) ? ErrorKind::kPeerDead : ErrorKind::kDisconnected;
    case kj::Exception::Type::UNIMPLEMENTED:
      return ErrorKind::kUnimplemented;
    case kj::Exception::Type::FAILED:
    default:
      return ErrorKind::kFailed;
  }
}

kj::Exception deadline_exceeded() {
  return kj::Exception(kj::Exception::Type::OVERLOADED, __FILE__, __LINE__,
                       kj::heapString(kDeadlineTag));
}

kj::Exception peer_dead(std::string_view peer) {
  return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                       kj::str(kPeerDeadTag, ": ", kj::arrayPtr(peer.data(), peer.size())));
}

kj::Exception too_many_in_flight(std::string_view peer) {
  return kj::Exception(kj::Exception::Type::OVERLOADED, __FILE__, __LINE__,
                       kj::str("dog-rpc: too many calls in flight to ", kj::arrayPtr(peer.data(), peer.size())));
}

kj::Exception in_backoff(std::string_view peer) {
  return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                       kj::str("dog-rpc: reconnect to ", kj::arrayPtr(peer.data(), peer.size()),
                               " is backing off"));
}

}  // namespace dog::rpc
