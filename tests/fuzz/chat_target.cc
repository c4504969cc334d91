// Target: dog-chat's message handler (examples/chat/main.cc, Room::onmessage, with
// command.h's parsing) on the real runtime: two users, alice and bob, are connected to one room
// Replica through identify and a WebSocket upgrade, and the fuzzer's messages arrive as theirs.
//
// The example is compiled into this file as it is (its main renamed), so the code under test is
// exactly the code users copy. Input: records [sender][len LE16][text message]; bit 0 of sender
// picks alice or bob, bit 1 sends the record as a binary frame. A user whose socket was closed is
// connected again. Checked: everything the server sends to a client is a JSON object with a
// string "type", no message closes its sender's socket, and nothing crashes (the 60,000-space
// message is in the corpus: issue 12's regex crash). regressions/chat_message/ holds {"type":1}.
#define main dog_chat_main
#include "examples/chat/main.cc"
#undef main

#include "tests/fuzz/runtime_driver.h"

namespace dog::fuzz {
namespace {

struct ChatNode {
  node::Loop loop;
  std::unique_ptr<Runtime> rt;
  WsClient users[2];
  uint64_t next_socket = 1;

  ChatNode() {
    rt = std::make_unique<Runtime>(loop, RuntimeConfig{});
    rt->add_group("LOBBY", [] {
      auto lobby = std::make_shared<Lobby>();
      lobby->limit = 2;
      return lobby;
    });
    rt->add_replica("ROOM", [] { return std::make_shared<Room>(); });
  }
  WsClient& user(int i) {
    static const char* kNames[] = {"alice", "bob"};
    if (!users[i].open()) {
      auto& env = rt->env();
      users[i] = connect_ws(*rt, env["LOBBY"].id_from_name("lobby-id"), kNames[i], {env["LOBBY"], env["ROOM"]},
                            next_socket++);
    }
    return users[i];
  }
};

void check_sent(test::TestSocket& ws) {
  for (const auto& m : ws.got) {
    auto j = dog::Json::parse(m, nullptr, /*allow_exceptions=*/false);
    fuzz_check(j.is_object() && j.contains("type") && j["type"].is_string(), "the server sends JSON objects with a type");
  }
  ws.got.clear();
}

}  // namespace

int chat_message(const uint8_t* data, size_t size) {
  static ChatNode* chat = new ChatNode();  // one node for the whole run
  Input in(data, size);
  for (int records = 0; records < 16 && !in.empty(); ++records) {
    const uint8_t sender = in.u8();
    size_t len = 0;
    const uint8_t* text = in.take(in.u16(), &len);
    WsClient& from = chat->user(sender & 1);
    fuzz_check(from.open(), "a user can connect");
    from.handler->on_message(from.ws, std::string_view(reinterpret_cast<const char*>(text), len), !(sender & 2));
    settle(chat->loop);
    // The handler answers bad input with an error message; it never closes the socket (a
    // throwing hook would: 1011).
    fuzz_check(from.ws->open, "a message never closes its sender's socket");
    for (auto& u : chat->users)
      if (u.ws) check_sent(*u.ws);
  }
  return 0;
}

}  // namespace dog::fuzz
