// The switch that makes ChannelConfig::encrypt = false usable. Production binaries get this
// weak definition (false): a plaintext config is refused by secure_connect/secure_accept and
// by ConnectionManager's constructor. Tests and the benchmark link
// tests/rpc/allow_plaintext.cc, whose strong definition returns true. Nothing else may.
#include "rpc/secure_channel.h"

namespace dog::rpc::detail {

__attribute__((weak)) bool plaintext_allowed() { return false; }

}  // namespace dog::rpc::detail
