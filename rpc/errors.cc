#include "rpc/errors.h"

#include <kj/string.h>

namespace dog::rpc {
namespace {

// The marker: our exceptions point their `file` at this array. kj may trim a source path
// prefix, so the pointer compared is the one kj stores for it (origin()).
constexpr char kOrigin[] = "dog-rpc";

// Codes carried in the exception's line. Never sent anywhere; renumbering is harmless.
enum class Code : int {
  kDeadline = 1,
  kPeerDead,
  kTooManyInFlight,
  kBackoff,
  kWrongNode,
  kConnectTimeout,
  kDisconnected,
  kQueueFull,
};

const char* origin() {
  static const char* const p =
      kj::Exception(kj::Exception::Type::FAILED, kOrigin, 0).getFile();
  return p;
}

kj::Exception make(kj::Exception::Type type, Code code, kj::String text) {
  return kj::Exception(type, kOrigin, static_cast<int>(code), kj::mv(text));
}

kj::ArrayPtr<const char> view(std::string_view s) { return kj::arrayPtr(s.data(), s.size()); }

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

bool raised_locally(const kj::Exception& e) { return e.getFile() == origin(); }

ErrorKind classify(const kj::Exception& e) {
  if (raised_locally(e)) {
    switch (static_cast<Code>(e.getLine())) {
      case Code::kDeadline: return ErrorKind::kDeadline;
      case Code::kPeerDead: return ErrorKind::kPeerDead;
      default: break;  // the rest are named by their type
    }
  }
  switch (e.getType()) {
    case kj::Exception::Type::OVERLOADED: return ErrorKind::kOverloaded;
    case kj::Exception::Type::DISCONNECTED: return ErrorKind::kDisconnected;
    case kj::Exception::Type::UNIMPLEMENTED: return ErrorKind::kUnimplemented;
    case kj::Exception::Type::FAILED:
    default: return ErrorKind::kFailed;
  }
}

kj::Exception deadline_exceeded() {
  return make(kj::Exception::Type::OVERLOADED, Code::kDeadline,
              kj::heapString("dog-rpc: deadline exceeded"));
}

kj::Exception peer_dead(std::string_view peer) {
  return make(kj::Exception::Type::DISCONNECTED, Code::kPeerDead,
              kj::str("dog-rpc: peer declared dead: ", view(peer)));
}

kj::Exception too_many_in_flight(std::string_view peer) {
  return make(kj::Exception::Type::OVERLOADED, Code::kTooManyInFlight,
              kj::str("dog-rpc: too many calls in flight to ", view(peer)));
}

kj::Exception in_backoff(std::string_view peer) {
  return make(kj::Exception::Type::DISCONNECTED, Code::kBackoff,
              kj::str("dog-rpc: reconnect to ", view(peer), " is backing off"));
}

kj::Exception wrong_node(std::string_view expected, std::string_view answered) {
  return make(kj::Exception::Type::DISCONNECTED, Code::kWrongNode,
              kj::str("dog-rpc: dialled ", view(expected), " but ", view(answered), " answered"));
}

kj::Exception connect_timed_out(std::string_view peer) {
  return make(kj::Exception::Type::DISCONNECTED, Code::kConnectTimeout,
              kj::str("dog-rpc: connecting to ", view(peer), " timed out"));
}

kj::Exception disconnected(std::string_view what) {
  return make(kj::Exception::Type::DISCONNECTED, Code::kDisconnected,
              kj::str("dog-rpc: ", view(what)));
}

kj::Exception queue_full(std::string_view peer) {
  return make(kj::Exception::Type::OVERLOADED, Code::kQueueFull,
              kj::str("dog-rpc: send queue to ", view(peer), " is full"));
}

}  // namespace dog::rpc
