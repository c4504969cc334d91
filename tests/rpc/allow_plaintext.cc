// Test-only: lets ChannelConfig::encrypt = false through (see rpc/plaintext_guard.cc). Linked
// into rpc_tests, dog-rpc-test-server and dog-rpc-bench only; never into a node binary.
#include "rpc/secure_channel.h"

namespace dog::rpc::detail {

bool plaintext_allowed() { return true; }

}  // namespace dog::rpc::detail
