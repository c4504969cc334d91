# dog node-to-node RPC schema.
#
# Everything that crosses machines between two dog nodes goes through the `Node` interface
# below: Group -> Replica routing (identify, release, deliver a request), WebSocket relays between
# the entry node (which holds the client socket) and the Replica's node, fan-out, and gossip.
# Each node serves one `Node` as the bootstrap capability of every peer connection; connections
# are bidirectional, so either side may call the other's bootstrap.
#
# VERSIONING RULES (read before editing)
# * Ordinals are append-only. Never renumber, reuse, retype or delete a field or method; to
#   retire one, rename it `obsoleteXxx` and stop setting it.
# * Enums are never renumbered; new enumerants are appended at the end. A receiver that sees an
#   enumerant it does not know must treat it as the documented fallback (see each enum).
# * New fields must have a default that means "the old behaviour", so an old sender and a new
#   receiver agree.
# * Unions may gain members (appended); a receiver that sees an unknown union member answers
#   UNIMPLEMENTED (Cap'n Proto does this for unknown methods by itself).
# * Changing the meaning of an existing field requires a new field, not a new comment.
# * `protocolVersion` in `Hello` is bumped only for changes that an old peer cannot safely
#   ignore; peers refuse versions outside their supported range with UNIMPLEMENTED.

@0xd341a524c162f5b0;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("dog::rpc::wire");

# ---------------------------------------------------------------------------------------------
# Common types

struct ObjectRef {
  # Addresses one object (a Group or a Replica). `id` is the 32-byte routing::ObjectId;
  # `ns` is the namespace (registered Group/Replica type) it was derived in.
  ns @0 :Text;
  id @1 :Data;
}

struct NotOwner {
  # The typed refusal "not owner, epoch E". The receiver's routing view (at `epoch`) says it
  # does not own the target. The sender refreshes its view to at least `epoch` and re-routes
  # once; a second refusal is reported to the caller (no ping-pong between stale views).
  epoch @0 :UInt64;
  ownerHint @1 :Text;   # the owner in the receiver's view, or "" if it has none
}

struct Header {
  name @0 :Text;
  value @1 :Text;
}

struct RequestHead {
  method @0 :Text;
  path @1 :Text;
  headers @2 :List(Header);
}

struct ResponseHead {
  status @0 :UInt16;
  headers @1 :List(Header);
}

interface ByteStream {
  # One direction of a streamed body. Flow control: `write` is a streaming call, so a slow
  # consumer holds the producer back through Cap'n Proto's per-stream window.
  write @0 (data :Data) -> stream;
  end @1 ();
  # The producer is done; resolves once the consumer has seen every byte.
  abort @2 (reason :Text);
  # The producer failed; the consumer must discard what it has.
}

# ---------------------------------------------------------------------------------------------
# WebSocket relay

struct WsMessage {
  union {
    text @0 :Text;
    binary @1 :Data;
  }
}

interface WsSink {
  # One direction of a WebSocket relayed between two nodes. The entry node hands the Replica's
  # node a WsSink that writes to the client socket; the Replica's node hands back a WsSink that
  # delivers the client's messages to the Replica.
  send @0 (message :WsMessage) -> stream;
  close @1 (code :UInt16, reason :Text, error :Bool);
  # Normal close, with the RFC 6455 close code (1000 normal, 1001 going away, 1011 error...).
  # After close, further sends fail with FAILED. An error that is not a close (the node or
  # the connection died) arrives as a broken capability (DISCONNECTED) instead. `error` (since
  # the cluster runtime): the client's connection did not end with its own close frame
  # (http::WebSocket::ended_by_error), so the Replica runs onerror rather than onclose.
}

struct SocketInfo {
  socketId @0 :UInt64;      # unique on the entry node
  entryNode @1 :Text;       # the node holding the client socket
  head @2 :RequestHead;     # the upgrade request, for the Replica's accept hook
}

# ---------------------------------------------------------------------------------------------
# Fan-out and gossip

enum FanOutKind {
  # Fallback for an unknown value: treat as `broadcast`.
  broadcast @0;
  emit @1;
  whisper @2;
}

struct FanOut {
  # One message per destination node: never one RPC per socket.
  group @0 :ObjectRef;
  kind @1 :FanOutKind;
  allInGroup @2 :Bool;          # every socket of the group on the receiving node...
  recipients @3 :List(UInt64);  # ...or exactly these socket ids (when allInGroup is false)
  except @4 :List(UInt64);      # socket ids to skip (the sender's own socket, for instance)
  message @5 :WsMessage;
}

struct FanOutResult {
  delivered @0 :UInt32;
  missing @1 :List(UInt64);     # recipients the node no longer holds
}

# ---------------------------------------------------------------------------------------------
# The node service

struct Hello {
  protocolVersion @0 :UInt32 = 1;
  nodeName @1 :Text;
  viewEpoch @2 :UInt64;
}

interface Node {
  hello @0 (hello :Hello) -> (hello :Hello);

  identify @1 (target :ObjectRef, epoch :UInt64) -> (result :IdentifyResult);
  # Asks the owner to make sure the object is live (start it on first use).
  release @2 (target :ObjectRef, epoch :UInt64) -> ();
  # The caller no longer needs the object pinned.

  deliver @3 (target :ObjectRef, epoch :UInt64, head :RequestHead, body :Data,
              responseBody :ByteStream, route :Route, toClient :WsSink)
      -> (result :DeliverResult);
  # One request with its body inline (small bodies: one round trip). If `responseBody` is set,
  # the response body is streamed into it before the call returns instead of inlined.
  # `route` (since the cluster runtime) carries the DOG identity of a stub returned by identify.
  # `toClient` is set by an entry node for a WebSocket upgrade request: if the object accepts
  # the upgrade, it answers `response.head.status = 101` with `response.socket` = the sink that
  # takes the client's messages, and it sends to the client through `toClient`.

  open @4 (target :ObjectRef, epoch :UInt64, head :RequestHead) -> (result :OpenResult);
  # A request whose body is streamed: the owner accepts (or refuses with notOwner) before any
  # body byte moves, then the caller streams `call.write` and ends with `call.finish()`.

  openSocket @5 (target :ObjectRef, epoch :UInt64, info :SocketInfo, toClient :WsSink)
      -> (result :SocketResult);

  fanOut @6 (message :FanOut) -> (result :FanOutResult);

  gossip @7 (group :ObjectRef, topic :Text, payload :Data) -> (reply :Data);
  # One peer's part of a gossip round. The caller asks N peers in parallel with one deadline and
  # collects per-peer results (rpc::gossip()). In the DOG runtime `group` names the peer
  # Replica and `topic` is "dog.gossip"; a missing handler or a throw is a FAILED exception.

  # ---- DOG runtime (cluster) methods, appended ----

  identifyGroup @8 (group :ObjectRef, requestId :Text, child :Text, caller :Text)
      -> (result :GroupIdentifyResult);
  # DOG's identify at the node hosting (or owning) the Group: reserves one slot for `requestId`
  # and names the Replica and the node it lives on.

  releaseSlot @9 (group :ObjectRef, replica :Data, requestId :Text, empty :Bool) -> ();
  # Gives one slot of `requestId` on `replica` back to the Group (a socket closed, a request
  # finished, a claim timed out). An empty `requestId` with `empty` set means the Replica was
  # evicted: the Group forgets it. Unknown groups or replicas are ignored.

  groupCast @10 (cast :GroupCast) -> ();
  # A broadcast or whisper from one Replica, sent to the Group's node, which forwards it once
  # to each node that holds client sockets of the group (as `deliverCast`).

  deliverCast @11 (cast :GroupCast) -> ();
  # Delivers a cast to this node's client sockets of the group, applying DOG's sender rules.

  subscribe @12 (group :ObjectRef, requestId :Text, node :Text, delta :Int32, absolute :Bool) -> ();
  # `node` holds `delta` more (or fewer) client sockets of `requestId` in the group; with
  # `absolute`, exactly `delta` (a hand-over, or a node re-asserting what it holds).

  peers @13 (group :ObjectRef, replica :Data) -> (peers :List(ReplicaRoute));
  # The Group's other Replicas and their nodes (for gossip).

  registerActivation @14 (target :ObjectRef, host :Text, hostSession :UInt64, group :ObjectRef,
                          report :GroupReport) -> (result :RegisterResult);
  # Directory: `host` holds a live activation of `target`; sent to the id's owner when
  # ownership moves, so later lookups find it. An empty `host` unregisters it (evicted). With `group` set, `target` is a Replica of that
  # Group whose node died: the receiver (the Group id's new owner) re-creates the Group and
  # adopts the Replica with the slot counts in `report`, so `limit` holds after a failover.

  lookup @15 (target :ObjectRef) -> (host :Text);
  # Where a live activation of `target` is, as far as this node knows: itself, a node that
  # registered it, or "" (unknown). A node that has just become an id's owner asks the id's
  # previous owner before activating anything, so a join never makes a second copy.
}

struct Route {
  requestId @0 :Text;    # DOG request id (x-dog-client-identifier)
  group @1 :Data;        # the Group id (x-dog-group-identifier)
  groupNode @2 :Text;    # where that Group lives
  groupNs @3 :Text;      # the Group's namespace
}

struct ReplicaRoute {
  id @0 :Data;
  node @1 :Text;
}

struct GroupIdentifyResult {
  union {
    replica @0 :ReplicaRoute;
    notHere @1 :NotOwner;       # ownerHint names the node to try instead
    error @2 :HttpErrorInfo;    # the Group (or its clusterize) refused
  }
  groupNode @3 :Text;           # the node that answered (hosts the Group)
}

struct HttpErrorInfo {
  status @0 :UInt16;
  message @1 :Text;
}

enum CastKind {
  # Fallback for an unknown value: drop the cast (and count it).
  broadcast @0;
  whisper @1;
  emit @2;
}

struct GroupCast {
  group @0 :ObjectRef;
  kind @1 :CastKind;
  sender @2 :Text;       # the sender's request id (a Replica's own id for HTTP-side sends)
  self @3 :Bool;         # include the sender's own sockets
  target @4 :Text;       # whisper: the request id to reach
  replica @5 :Data;      # emit: only sockets of this Replica
  body @6 :Text;
}

struct GroupReport {
  replicaCount @0 :Int32;          # slots the Replica holds (sockets + requests in flight)
  requestIds @1 :List(Text);       # request ids with a socket on it
}

struct RegisterResult {
  union {
    ok @0 :Void;
    conflict @1 :Text;   # another activation is kept; the caller deactivates its own
  }
}

struct IdentifyResult {
  union {
    ok @0 :Void;
    notOwner @1 :NotOwner;
  }
}

struct Response {
  head @0 :ResponseHead;
  body @1 :Data;     # empty when streamed into responseBody
  socket @2 :WsSink; # set with status 101: the sink for the client's messages (deliver.toClient)
}

struct DeliverResult {
  union {
    response @0 :Response;
    notOwner @1 :NotOwner;
  }
}

interface RequestCall {
  # A request accepted by the owner whose body is still arriving.
  write @0 (data :Data) -> stream;
  finish @1 () -> (response :Response);
  # The body is complete; resolves with the object's answer.
}

struct OpenResult {
  union {
    call @0 :RequestCall;
    notOwner @1 :NotOwner;
  }
}

struct SocketResult {
  union {
    fromClient @0 :WsSink;
    notOwner @1 :NotOwner;
    refused @2 :UInt16;     # the Replica refused the socket; HTTP status for the client
  }
}
