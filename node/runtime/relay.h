// WebSocket relays between the entry node (which holds the client's TCP connection) and the
// node of the Replica that serves it.
//
//   client ══ws══ entry node                              Replica's node
//                 EntryRelay (WebSocketHandler)  ─fromClient: WsSink─►  ReplicaSink ─► Replica hooks
//                 ClientSink (WsSink)            ◄─toClient: WsSink──  RelaySocket (http::WebSocket)
//
// Contract
// --------
// * A Replica cannot tell a relayed socket from a local one: it sees an http::WebSocket.
// * Close codes travel both ways; a relay whose other end vanished (node died, connection
//   broke) closes the client with 1012 (service restart) so it reconnects to any node, and the
//   Replica sees 1006 (onerror).
// * Flow control is end to end: `WsSink.send` is a streaming call. The Replica's node answers a
//   send only once the Replica's socket reads again (the socket pauses while its hooks lag), so
//   Cap'n Proto's stream window fills and the entry node stops reading that one client; a
//   client that does not read what the Replica sends is closed by the entry node's send cap.
// * Sends made before the client socket exists (inside onopen) wait at the entry node, bounded.
#pragma once

#include <memory>
#include <string>

#include "node/runtime/runtime.h"
#include "rpc/dog.capnp.h"

namespace dog {

// Entry side. `route` names the DOG identity (for the node's socket index); may be null.
std::shared_ptr<Runtime::EntryRelay> make_entry_relay(Runtime& rt, std::shared_ptr<Stub::Identity> route);
// The toClient capability of a relay, passed with the upgrade request.
rpc::wire::WsSink::Client make_client_sink(const std::shared_ptr<Runtime::EntryRelay>& relay);
// The relay as the front door's handler of the client socket.
std::shared_ptr<http::WebSocketHandler> as_handler(const std::shared_ptr<Runtime::EntryRelay>& relay);
// The Replica accepted: `from_client` takes the client's messages; `node` hosts the Replica.
void bind_entry_relay(Runtime::EntryRelay& relay, rpc::wire::WsSink::Client from_client, const std::string& node);
// Indexes the relay's client under its Group before the 101 (see Runtime::attach_client).
Task<void> attach_entry_relay(Runtime& rt, const std::shared_ptr<Runtime::EntryRelay>& relay);
// A cast for the relay's client (buffered until the client socket is open); `frames` is the
// message encoded once for every recipient on this node.
void relay_deliver(Runtime::EntryRelay& relay, std::string_view text, const http::SharedFrames& frames);
// The relay's client socket on this node, once open (null before and after).
std::shared_ptr<http::WebSocket> relay_socket(Runtime::EntryRelay& relay);
// The Replica refused the upgrade (a plain response went back instead).
void abandon_entry_relay(Runtime::EntryRelay& relay);
// Closes the client socket with `code` (the Replica's node is gone).
void close_entry_relay(Runtime::EntryRelay& relay, uint16_t code, const std::string& reason);

// True for the Replica-side socket of a relay (its client is indexed by the entry node).
bool is_relay_socket(const http::WebSocket& ws);

// Replica side: runs `handler` (the Replica's accepted socket) over `to_client` and returns the
// sink for the client's messages. Calls handler->on_open at once.
rpc::wire::WsSink::Client open_replica_relay(Runtime& rt, std::shared_ptr<http::WebSocketHandler> handler,
                                             rpc::wire::WsSink::Client to_client);

}  // namespace dog
