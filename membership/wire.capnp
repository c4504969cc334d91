# Wire format of the membership protocol (SWIM + Lifeguard).
#
# Every datagram is one packed `Datagram` message; every stream frame is one packed `PushPull`.
# Both are sealed by membership/keyring.h (XChaCha20-Poly1305) before they leave the process,
# so nothing here is ever read before it has been authenticated.
#
# Evolution rules:
#  - Field ordinals are append-only; never renumber, retype or reuse a field.
#  - WARNING: ENUMS ARE APPEND-ONLY. The numeric values are part of the protocol itself; an
#    unknown enumerant read from a newer peer is treated as malformed and the packet dropped.
#  - Readers apply ReaderOptions limits (traversal and nesting) and per-field size caps from
#    Config before using any value (membership/wire.cc).

@0xda673364c8989e85;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("dog::membership::capnp_wire");

# WARNING: ONLY APPEND TO THIS LIST.
enum MsgKind {
  ping @0;      # direct or relayed probe; `target` names the intended recipient
  pingReq @1;   # ask the receiver to probe `target` at `targetAddr` on our behalf
  ack @2;       # answer to ping (or relayed answer to pingReq), matched by `seq`
  nack @3;      # Lifeguard: the relay got no ack from `target` in time
  gossip @4;    # carries piggybacked updates only
}

# WARNING: ONLY APPEND TO THIS LIST.
enum UpdateKind {
  alive @0;
  suspect @1;
  dead @2;
  left @3;
  user @4;
}

struct Meta {
  rpcAddr @0 :Text;
  httpAddr @1 :Text;
  zone @2 :Text;
  capacity @3 :UInt32;
  buildVersion @4 :Text;
  load @5 :UInt32;        # live Replicas on the node (placement); 0 from older peers
}

struct Update {
  kind @0 :UpdateKind;
  node @1 :Text;          # subject (for user updates: the origin)
  incarnation @2 :UInt64; # for user updates: the origin's user sequence number
  addr @3 :Text;          # alive only
  from @4 :Text;          # suspect/dead: the accuser
  meta @5 :Meta;          # alive only
  payload @6 :Data;       # user only
  session @7 :UInt64;     # the subject's session (one per process run); 0 = unknown (older peer)
}

struct Datagram {
  from @0 :Text;          # sender's node name
  kind @1 :MsgKind;
  seq @2 :UInt32;
  target @3 :Text;
  targetAddr @4 :Text;
  wantNack @5 :Bool;
  updates @6 :List(Update);
}

# WARNING: ONLY APPEND TO THIS LIST.
enum SyncKind {
  digest @0;   # only the view digest; the receiver answers inSync or full
  full @1;     # complete view
  inSync @2;   # digests matched, nothing to do
}

# WARNING: ONLY APPEND TO THIS LIST.
enum MemberStatus {
  alive @0;
  suspect @1;
  dead @2;
  left @3;
}

struct MemberRecord {
  name @0 :Text;
  addr @1 :Text;
  incarnation @2 :UInt64;
  status @3 :MemberStatus;
  meta @4 :Meta;
  session @5 :UInt64;     # as Update.session; 0 = unknown (older peer)
}

struct PushPull {
  from @0 :Text;
  fromAddr @1 :Text;
  kind @2 :SyncKind;
  join @3 :Bool;
  wantReply @4 :Bool;
  digest @5 :UInt64;
  members @6 :List(MemberRecord);
}
