// Table tests for the object id format (routing/object_id.h).
#include "routing/object_id.h"

#include <catch2/catch.hpp>
#include <set>
#include <string>

namespace dog::routing {
namespace {

bool is_lower_hex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST_CASE("routing: id_from_name is deterministic and namespaced", "[routing][id]") {
  const ObjectId a = id_from_name("chat-rooms", "lobby");
  CHECK(a == id_from_name("chat-rooms", "lobby"));
  CHECK(a == IdNamespace("chat-rooms").from_name("lobby"));
  CHECK(a != id_from_name("chat-rooms", "lobby2"));
  CHECK(a != id_from_name("chat-room", "lobby"));
  // No concatenation ambiguity between namespace and name.
  CHECK(id_from_name("ab", "c") != id_from_name("a", "bc"));
  CHECK(id_from_name("", "x") != id_from_name("x", ""));
}

TEST_CASE("routing: ids print as 64 lowercase hex characters and parse back", "[routing][id]") {
  const IdNamespace ns("counters");
  for (const ObjectId& id : {ns.from_name("a"), ns.from_name(""), ns.new_unique()}) {
    const std::string hex = id.to_string();
    CHECK(hex.size() == 64);
    CHECK(is_lower_hex(hex));
    const IdParseResult parsed = ns.parse(hex);
    REQUIRE(parsed.ok());
    CHECK(parsed.message.empty());
    CHECK(*parsed.id == id);
    CHECK(id_from_string("counters", hex).id == id);
  }
}

TEST_CASE("routing: new_unique_id gives distinct ids of its namespace", "[routing][id]") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const ObjectId id = new_unique_id("jobs");
    CHECK(IdNamespace("jobs").owns(id));
    seen.insert(id.to_string());
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("routing: new_unique with an entropy source uses exactly its bytes", "[routing][id]") {
  const IdNamespace ns("jobs");
  const EntropyFn ones = [](std::span<uint8_t> out) {
    CHECK(out.size() == ObjectId::kBodySize);
    for (uint8_t& b : out) b = 0x11;
  };
  const ObjectId id = ns.new_unique(ones);
  CHECK(id.to_string().substr(0, 48) == std::string(48, '1'));
  CHECK(ns.owns(id));
  CHECK(id == ns.new_unique(ones));
}

struct BadCase {
  const char* what;
  std::string text;
  IdError error;
};

TEST_CASE("routing: id_from_string rejects malformed and foreign ids with a clear error",
          "[routing][id]") {
  const IdNamespace ns("accounts");
  const std::string good = ns.from_name("alice").to_string();
  std::string flipped_body = good;
  flipped_body[0] = flipped_body[0] == '0' ? '1' : '0';
  std::string flipped_tag = good;
  flipped_tag[63] = flipped_tag[63] == '0' ? '1' : '0';
  std::string upper = good;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  // Edited in place: string operator+ and replace() trip GCC 12's -Wrestrict false positive.
  std::string one_long = good;
  one_long.push_back('0');
  std::string non_hex = good;
  non_hex[0] = 'g';
  std::string spaced = good;
  spaced[10] = ' ';
  const BadCase cases[] = {
      {"empty", "", IdError::kBadLength},
      {"one short", good.substr(0, 63), IdError::kBadLength},
      {"one long", one_long, IdError::kBadLength},
      {"non-hex character", non_hex, IdError::kBadHex},
      {"upper case", upper, IdError::kBadHex},
      {"embedded space", spaced, IdError::kBadHex},
      {"other namespace", IdNamespace("accounts2").from_name("alice").to_string(),
       IdError::kWrongNamespace},
      {"all zero", std::string(64, '0'), IdError::kWrongNamespace},
      {"body changed", flipped_body, IdError::kWrongNamespace},
      {"tag changed", flipped_tag, IdError::kWrongNamespace},
  };
  for (const BadCase& c : cases) {
    INFO(c.what);
    const IdParseResult r = ns.parse(c.text);
    CHECK_FALSE(r.ok());
    CHECK(r.error == c.error);
    CHECK_FALSE(r.message.empty());
  }
}

TEST_CASE("routing: error names are stable", "[routing][id]") {
  CHECK(to_string(IdError::kBadLength) == "bad_length");
  CHECK(to_string(IdError::kBadHex) == "bad_hex");
  CHECK(to_string(IdError::kWrongNamespace) == "wrong_namespace");
}

TEST_CASE("routing: routing key is the first 8 bytes big-endian", "[routing][id]") {
  std::array<uint8_t, ObjectId::kSize> bytes{};
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i + 1);
  const ObjectId id(bytes);
  CHECK(id.routing_key() == 0x0102030405060708ULL);
  CHECK(std::hash<ObjectId>{}(id) == static_cast<size_t>(0x0102030405060708ULL));
  CHECK(id.to_string().substr(0, 16) == "0102030405060708");
}

}  // namespace
}  // namespace dog::routing
