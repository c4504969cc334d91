// Replays every committed input of tests/fuzz/<target>/ (the seed corpus) and
// tests/fuzz/regressions/<target>/ (inputs that once crashed) through the fuzz targets, in the
// normal build: a fixed crash that comes back fails here, in Release and under ASan+UBSan.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "tests/fuzz/targets.h"

namespace {

namespace fs = std::filesystem;
using Entry = int (*)(const uint8_t*, size_t);

fs::path fuzz_dir() {
  const char* src = std::getenv("DOG_SOURCE_DIR");
  return fs::path(src ? src : DOG_FUZZ_SOURCE_DIR) / "tests" / "fuzz";
}

// Every regular file under `dir` (none if it does not exist), sorted for stable output.
std::vector<fs::path> inputs(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

size_t replay(const std::string& name, Entry entry) {
  size_t n = 0;
  for (const auto& dir : {fuzz_dir() / name, fuzz_dir() / "regressions" / name}) {
    for (const auto& file : inputs(dir)) {
      std::ifstream f(file, std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      INFO(file.string());
      CHECK(entry(bytes.data(), bytes.size()) == 0);
      ++n;
    }
  }
  return n;
}

}  // namespace

TEST_CASE("fuzz corpus replay: object_id") { CHECK(replay("object_id", dog::fuzz::object_id) > 0); }
TEST_CASE("fuzz corpus replay: ws_codec") { CHECK(replay("ws_codec", dog::fuzz::ws_codec) > 0); }
TEST_CASE("fuzz corpus replay: http_connection") { CHECK(replay("http_connection", dog::fuzz::http_connection) > 0); }
TEST_CASE("fuzz corpus replay: swim_packet") { CHECK(replay("swim_packet", dog::fuzz::swim_packet) > 0); }
TEST_CASE("fuzz corpus replay: chat_message") { CHECK(replay("chat_message", dog::fuzz::chat_message) > 0); }
TEST_CASE("fuzz corpus replay: rpc_handshake") { CHECK(replay("rpc_handshake", dog::fuzz::rpc_handshake) > 0); }
TEST_CASE("fuzz corpus replay: rpc_frames") { CHECK(replay("rpc_frames", dog::fuzz::rpc_frames) > 0); }
TEST_CASE("fuzz corpus replay: node_calls") { CHECK(replay("node_calls", dog::fuzz::node_calls) > 0); }
