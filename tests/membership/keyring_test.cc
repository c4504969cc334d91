#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "harness.h"
#include "membership/keyring.h"

using namespace dog::membership;
using namespace dog::membership::test;

namespace {
std::vector<uint8_t> seal(const Keyring& r, const std::string& msg, uint64_t counter) {
  return seal_as_peer(r, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(msg.data()), msg.size()),
                      kDatagramAd, counter);
}
std::optional<std::string> open(const Keyring& r, const std::vector<uint8_t>& s) {
  std::vector<uint8_t> out(s.size());
  auto n = r.open(s, kDatagramAd, out, nullptr);
  if (!n) return std::nullopt;
  return std::string(out.begin(), out.begin() + static_cast<long>(*n));
}
}  // namespace

TEST_CASE("keyring seals with the primary and opens with any installed key") {
  const auto k1 = test_key(1), k2 = test_key(2);
  Keyring a(k1), b(k2);
  auto s = seal(a, "hello", 1);
  CHECK(s.size() == 5 + Keyring::kOverhead);
  CHECK(open(a, s) == "hello");
  CHECK_FALSE(open(b, s));
  CHECK(b.install(k1));
  CHECK_FALSE(b.install(k1));
  CHECK(open(b, s) == "hello");
}

TEST_CASE("keyring rotation install use remove keeps traffic flowing") {
  const auto k1 = test_key(1), k2 = test_key(2);
  Keyring a(k1), b(k1);
  // Phase 1: install the new key everywhere; the old one still seals.
  a.install(k2);
  b.install(k2);
  CHECK(open(b, seal(a, "p1", 1)) == "p1");
  // Phase 2: switch primaries one node at a time; both directions still open.
  CHECK(a.use(k2));
  CHECK(a.is_primary(k2));
  CHECK(open(b, seal(a, "p2", 2)) == "p2");
  CHECK(open(a, seal(b, "p2b", 3)) == "p2b");
  CHECK(b.use(k2));
  // Phase 3: remove the old key; the primary cannot be removed.
  CHECK_FALSE(a.remove(k2));
  CHECK(a.remove(k1));
  CHECK(b.remove(k1));
  CHECK_FALSE(a.remove(k1));
  CHECK(a.size() == 1);
  CHECK(open(b, seal(a, "p3", 4)) == "p3");
  // A node that only has the removed key can no longer talk to the cluster.
  Keyring old(k1);
  CHECK_FALSE(open(a, seal(old, "stale", 5)));
  CHECK_FALSE(a.use(k1));
}

TEST_CASE("keyring rejects tampering, truncation, wrong associated data and bad versions") {
  Keyring a(test_key(7));
  auto s = seal(a, "payload", 1);
  for (size_t i = 0; i < s.size(); ++i) {
    auto t = s;
    t[i] ^= 0x01;
    INFO("flipped byte " << i);
    CHECK_FALSE(open(a, t));
  }
  std::vector<uint8_t> shorter(s.begin(), s.end() - 1);
  CHECK_FALSE(open(a, shorter));
  std::vector<uint8_t> tiny(s.begin(), s.begin() + 10);
  CHECK_FALSE(open(a, tiny));
  std::vector<uint8_t> out(s.size());
  CHECK_FALSE(a.open(s, kStreamAd, out, nullptr));  // a datagram is not a stream frame
  CHECK(open(a, s) == "payload");
}
