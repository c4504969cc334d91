// Fixed vectors: they pin the persistent id format and the placement function. If one of these
// fails, the change would make existing ids unparseable or move objects in a live cluster (and
// mixed-version nodes would disagree about owners). Do not "update the expected values" unless the
// change is a deliberate, versioned migration.
//
// The id vectors were cross-checked with an independent implementation (Python's hashlib):
//   nk   = blake2b(ns, digest_size=32, key=b"dog.routing.id.name.v1")
//   tk   = blake2b(ns, digest_size=32, key=b"dog.routing.id.tag.v1")
//   body = blake2b(name, digest_size=24, key=nk);  id = body + blake2b(body, 8, key=tk)
//   node_hash = blake2b(node_id, digest_size=8, key=b"dog.routing.node.v1"), big-endian
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "routing/hash.h"
#include "routing/object_id.h"
#include "routing/routing_table.h"
#include "test_util.h"

namespace dog::routing {
namespace {

TEST_CASE("routing: fixed vectors: id format", "[routing][fixed]") {
  CHECK(id_from_name("chat-rooms", "lobby").to_string() ==
        "07743aca7de0e7b51926e4fc4454c52fa31f956ffe0f4075ded33000cf9fa0dc");
  CHECK(id_from_name("counters", "").to_string() ==
        "b93a4293374e9c7dc5801a3b0f17a88203bb15e02f034a546f7dd26b1aac90fc");
  const EntropyFn counting = [](std::span<uint8_t> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i);
  };
  CHECK(IdNamespace("jobs").new_unique(counting).to_string() ==
        "000102030405060708090a0b0c0d0e0f1011121314151617a5786981b367ec09");
  CHECK(id_from_string("chat-rooms",
                       "07743aca7de0e7b51926e4fc4454c52fa31f956ffe0f4075ded33000cf9fa0dc")
            .ok());
}

TEST_CASE("routing: fixed vectors: placement hashes", "[routing][fixed]") {
  CHECK(detail::node_hash("node-0000") == 0x7b76a160ff82c54aULL);
  const uint64_t token = detail::token_hash(0x0123456789abcdefULL, 5);
  CHECK(token == 0x14bc574c2a2b4c72ULL);
  CHECK(detail::token_race_id(token) == 0x6572c011U);
  CHECK(detail::mix32(0xdeadbeefU) == 0xe628c683U);
  CHECK(detail::race_score(0x1122334455667788ULL, 0xcafef00dU) == 0xc66a4eb3U);
  const TableParams defaults;
  CHECK(defaults.slot_bits == 11);
  CHECK(defaults.tokens_per_weight == 128);
}

TEST_CASE("routing: fixed vectors: owners in a small weighted view", "[routing][fixed]") {
  const View view{3, {{"alpha", 1}, {"beta", 2}, {"gamma", 0.5}, {"delta", 1}, {"epsilon", 3}}};
  const RoutingTable t = testing::build(view);
  const char* expected[] = {"epsilon", "epsilon", "alpha", "epsilon",
                            "epsilon", "beta",    "delta", "delta"};
  for (int i = 0; i < 8; ++i) {
    INFO("name " << i);
    CHECK(t.owner(id_from_name("fixed", std::to_string(i))).node_id == expected[i]);
  }
}

TEST_CASE("routing: fixed vectors: owners and successors at 1000 members", "[routing][fixed]") {
  View view;
  view.epoch = 1;
  char name[32];
  for (int i = 0; i < 1000; ++i) {
    std::snprintf(name, sizeof name, "node-%04d", i);
    view.members.push_back({name, 1.0});
  }
  const RoutingTable t = testing::build(view);
  // FNV-1a over the owners' names of 100000 keys: any change in placement changes it.
  uint64_t fnv = 1469598103934665603ULL, key = 0;
  for (int i = 0; i < 100000; ++i) {
    key = detail::mix64(key + i);
    for (char c : t.owner_of_key(key).node_id) {
      fnv ^= static_cast<uint8_t>(c);
      fnv *= 1099511628211ULL;
    }
  }
  CHECK(fnv == 0xc472d5f89f2adeb9ULL);
  const char* expected[4][4] = {{"node-0678", "node-0515", "node-0742", "node-0388"},
                                {"node-0192", "node-0113", "node-0127", "node-0363"},
                                {"node-0800", "node-0669", "node-0265", "node-0081"},
                                {"node-0550", "node-0871", "node-0173", "node-0900"}};
  for (int i = 0; i < 4; ++i) {
    const std::vector<Owner> s = t.successors(id_from_name("fixed", std::to_string(i)), 4);
    REQUIRE(s.size() == 4);
    for (int j = 0; j < 4; ++j) CHECK(s[j].node_id == expected[i][j]);
  }
}

}  // namespace
}  // namespace dog::routing
