// kj::AsyncIoStream over an Asio TCP socket, so Cap'n Proto RPC and anything else written
// against KJ streams runs on a dog::node::Loop.
//
// Contract
// --------
// * The stream is owned by the Loop whose io_context created the socket; use it only there.
// * Cancellation is KJ's: dropping a pending read/write promise cancels it. The stream never
//   hands the caller's buffer to Asio (it waits for readiness, then reads synchronously), so a
//   dropped read can never write into freed memory.
// * Errors surface as kj::Exception of type DISCONNECTED; end of stream is a short read.
// * Dropping the stream closes the socket.
#pragma once

#include <asio/ip/tcp.hpp>
#include <kj/async-io.h>

namespace dog::node {

kj::Own<kj::AsyncIoStream> wrap_socket(asio::ip::tcp::socket socket);

// Connects to `endpoint` on `io` and resolves to a stream. Fails with DISCONNECTED.
kj::Promise<kj::Own<kj::AsyncIoStream>> connect_stream(asio::io_context& io,
                                                       asio::ip::tcp::endpoint endpoint);

}  // namespace dog::node
