// Target: object-id parsing (routing/object_id.h), as a client's URL or a peer's call hands an
// id to IdNamespace::parse().
//
// Input: [ns length (low 5 bits); bit 7: start from a valid id][namespace][rest]. Plain: `rest`
// is parsed as it is. Valid-id mode: the first 24 bytes of `rest` are the body of a fresh id of
// this namespace (new_unique with the fuzzer's entropy), the next two pick a hex position and a
// replacement character, so the fuzzer reaches the tag check and the success path.
// Checked: success only for 64 lowercase hex characters; a parsed id prints back to its input
// and belongs to the namespace; the error kind matches the input's shape.
#include <algorithm>
#include <cstring>
#include <string>

#include "routing/object_id.h"
#include "tests/fuzz/targets.h"

namespace dog::fuzz {

int object_id(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t head = in.u8();
  size_t ns_len = 0;
  const uint8_t* ns_bytes = in.take(head & 31, &ns_len);
  const std::string ns(reinterpret_cast<const char*>(ns_bytes), ns_len);
  const routing::IdNamespace keys(ns);

  std::string hex;
  if (head & 0x80) {
    size_t got = 0;
    const uint8_t* body = in.take(routing::ObjectId::kBodySize, &got);
    auto id = keys.new_unique([&](std::span<uint8_t> out) {
      std::memset(out.data(), 0, out.size());
      std::memcpy(out.data(), body, std::min(got, out.size()));
    });
    fuzz_check(keys.owns(id), "a fresh id belongs to its namespace");
    hex = id.to_string();
    if (!in.empty()) hex[in.u8() % hex.size()] = static_cast<char>(in.u8());
  } else {
    size_t got = 0;
    const uint8_t* rest = in.rest(&got);
    hex.assign(reinterpret_cast<const char*>(rest), got);
  }

  auto parsed = keys.parse(hex);
  const bool shape = hex.size() == routing::ObjectId::kHexSize &&
                     hex.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (parsed) {
    fuzz_check(shape, "only 64 lowercase hex characters parse");
    fuzz_check(parsed.id->to_string() == hex, "a parsed id prints back to its input");
    fuzz_check(keys.owns(*parsed.id), "a parsed id belongs to the namespace");
    fuzz_check(parsed.message.empty(), "success carries no message");
  } else {
    fuzz_check(!parsed.message.empty(), "a rejection says why");
    if (hex.size() != routing::ObjectId::kHexSize) fuzz_check(parsed.error == routing::IdError::kBadLength, "length first");
    else if (!shape) fuzz_check(parsed.error == routing::IdError::kBadHex, "bad hex");
    else fuzz_check(parsed.error == routing::IdError::kWrongNamespace, "well-formed, wrong tag");
  }
  // The free function must agree with the namespace object.
  fuzz_check(routing::id_from_string(ns, hex).ok() == parsed.ok(), "id_from_string agrees");
  return 0;
}

}  // namespace dog::fuzz
