// fuzz_seeds DIR: writes the seed inputs that need the real encoders into DIR/<target>/ (the
// other seeds are hand-written files): Node calls built with the generated capnp builders, and
// SWIM packets from membership/wire.h's encoder, in the targets' input formats. Run once; the
// committed corpus (tests/fuzz/<target>/) is then minimized with -merge=1.
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "membership/wire.h"
#include "routing/object_id.h"
#include "rpc/dog.capnp.h"

namespace {

namespace fs = std::filesystem;
using namespace dog;

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string call(uint8_t method, capnp::MessageBuilder& b) {
  auto words = capnp::messageToFlatArray(b);
  auto bytes = words.asBytes();
  return std::string(1, char(method)) + std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

void ref(rpc::wire::ObjectRef::Builder r, const char* ns, const char* name) {
  r.setNs(ns);
  auto id = routing::id_from_name(ns, name).bytes();
  r.setId(capnp::Data::Reader(id.data(), id.size()));
}

void node_calls(const fs::path& dir) {
  using rpc::wire::Node;
  {
    capnp::MallocMessageBuilder b;
    auto p = b.initRoot<Node::HelloParams>().initHello();
    p.setNodeName("peer");
    p.setViewEpoch(3);
    write(dir, "hello", call(0, b));
  }
  {
    capnp::MallocMessageBuilder b;
    auto p = b.initRoot<Node::IdentifyParams>();
    ref(p.initTarget(), "LOBBY", "lobby");
    write(dir, "identify", call(1, b));
  }
  {
    capnp::MallocMessageBuilder b;
    auto p = b.initRoot<Node::DeliverParams>();
    ref(p.initTarget(), "LOBBY", "lobby");
    auto h = p.initHead();
    h.setMethod("GET");
    h.setPath("/room?x=1");
    auto hs = h.initHeaders(1);
    hs[0].setName("host");
    hs[0].setValue("a");
    write(dir, "deliver", call(3, b));
  }
  {
    capnp::MallocMessageBuilder b;
    auto p = b.initRoot<Node::OpenParams>();
    ref(p.initTarget(), "ROOM", "r1");
    p.initHead().setMethod("GET");
    write(dir, "open", call(4, b));
  }
  {
    capnp::MallocMessageBuilder b;
    auto p = b.initRoot<Node::FanOutParams>().initMessage();
    ref(p.initGroup(), "LOBBY", "lobby");
    p.setAllInGroup(true);
    p.initMessage().setText("hi");
    write(dir, "fanout", call(6, b));
  }
  {
    capnp::MallocMessageBuilder b;
    auto p = b.initRoot<Node::GossipParams>();
    ref(p.initGroup(), "ROOM", "r1");
    p.setTopic("t");
    write(dir, "gossip", call(7, b));
  }
  {
    capnp::MallocMessageBuilder b;
    auto p = b.initRoot<Node::IdentifyGroupParams>();
    ref(p.initGroup(), "LOBBY", "lobby");
    p.setRequestId("alice");
    p.setChild("ROOM");
    p.setCaller("peer");
    write(dir, "identify_group", call(8, b));
  }
  {
    capnp::MallocMessageBuilder b;
    auto p = b.initRoot<Node::ReleaseSlotParams>();
    ref(p.initGroup(), "LOBBY", "lobby");
    p.setRequestId("alice");
    write(dir, "release_slot", call(9, b));
  }
  for (uint8_t m : {10, 11}) {
    capnp::MallocMessageBuilder b;
    auto c = b.initRoot<Node::GroupCastParams>().initCast();
    ref(c.initGroup(), "LOBBY", "lobby");
    c.setSender("alice");
    c.setBody("{}");
    write(dir, m == 10 ? "group_cast" : "deliver_cast", call(m, b));
  }
  {
    capnp::MallocMessageBuilder b;
    auto p = b.initRoot<Node::SubscribeParams>();
    ref(p.initGroup(), "LOBBY", "lobby");
    p.setRequestId("alice");
    p.setNode("peer");
    p.setDelta(1);
    write(dir, "subscribe", call(12, b));
  }
  {
    capnp::MallocMessageBuilder b;
    auto p = b.initRoot<Node::RegisterActivationParams>();
    ref(p.initTarget(), "ROOM", "r1");
    p.setHost("peer");
    ref(p.initGroup(), "LOBBY", "lobby");
    auto r = p.initReport();
    r.setReplicaCount(1);
    r.initRequestIds(1).set(0, "alice");
    write(dir, "register_activation", call(14, b));
  }
  {
    capnp::MallocMessageBuilder b;
    ref(b.initRoot<Node::LookupParams>().initTarget(), "ROOM", "r1");
    write(dir, "lookup", call(15, b));
  }
}

// swim_packet records: [op][len LE16][bytes]; op 0 = a packed Datagram, 1 = a packed PushPull.
std::string record(uint8_t op, const std::vector<uint8_t>& b) {
  std::string r(1, char(op));
  r += char(b.size() & 0xff);
  r += char(b.size() >> 8);
  r.append(b.begin(), b.end());
  return r;
}

void swim(const fs::path& dir) {
  using namespace dog::membership;
  std::vector<uint8_t> out;
  Datagram ping;
  ping.from = "a";
  ping.kind = MsgKind::kPing;
  ping.seq = 7;
  ping.target = "fuzz-self";
  Update alive;
  alive.kind = UpdateKind::kAlive;
  alive.node = "a";
  alive.incarnation = 1;
  alive.addr = "a:1";
  alive.session = 1;
  alive.meta.zone = "z1";
  ping.updates.push_back(alive);
  encode(ping, out);
  std::string ping_rec = record(0, out);
  Datagram suspect = ping;
  suspect.kind = MsgKind::kGossip;
  suspect.updates[0].kind = UpdateKind::kSuspect;
  suspect.updates[0].node = "fuzz-self";
  suspect.updates[0].from = "a";
  encode(suspect, out);
  std::string suspect_rec = record(0, out);
  PushPull join;
  join.from = "b";
  join.from_addr = "b:1";
  join.kind = SyncKind::kFull;
  join.join = true;
  join.want_reply = true;
  join.members.push_back({"b", "b:1", 1, MemberState::kAlive, {}, 1});
  join.members.push_back({"c", "c:1", 4, MemberState::kDead, {}, 1});
  encode(join, out);
  std::string join_rec = record(1, out);
  std::string tick = std::string("\x04\xe8\x03", 3);  // 1 s of timers
  write(dir, "ping", ping_rec + tick);
  write(dir, "join_then_suspect", join_rec + suspect_rec + tick + tick + tick);
  write(dir, "replay", ping_rec + std::string(1, char(0x40)) + ping_rec.substr(1));
  write(dir, "structured", std::string("\x05\x10\x00\x01\x00\x07\x01\x02\x00\x03\x00\x01\x01\x05\x02\x00\x01", 17) + tick);
  write(dir, "unsealed", std::string("\x02\x05\x00hello\x03\x02\x00hi", 13));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const fs::path dir = argv[1];
  node_calls(dir / "node_calls");
  swim(dir / "swim_packet");
  return 0;
}
