// Key files and cluster flags (node/cluster/keyfile.cc, options.cc): every rule, good and bad.
#include <catch2/catch.hpp>
#include <CLI/CLI.hpp>
#include <sodium.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "node/cluster/cluster.h"
#include "node/cluster/options.h"

using namespace dog::node::cluster;
using Kind = ClusterError::Kind;

namespace {

std::string temp_file(const std::string& text) {
  static int n = 0;
  auto p = std::filesystem::temp_directory_path() /
           ("dog-keyfile-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

Kind kind_of_text(const std::string& text) {
  try {
    parse_key_text(text, "k");
  } catch (const ClusterError& e) {
    return e.kind();
  }
  return Kind::kOther;
}

std::string b64(size_t bytes, uint8_t fill) {
  std::string raw(bytes, static_cast<char>(fill));
  std::string out(sodium_base64_ENCODED_LEN(bytes, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                    raw.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);
  return out;
}

}  // namespace

TEST_CASE("key file: keys in order, comments, blank lines and CRLF ignored", "[cluster][keyfile]") {
  auto path = temp_file("# cluster keys\n\n  " + b64(32, 1) + "  \r\n" + b64(32, 2) + "\n\n");
  auto keys = read_key_file(path);
  REQUIRE(keys.size() == 2);
  CHECK(keys[0][0] == 1);
  CHECK(keys[0][31] == 1);
  CHECK(keys[1][0] == 2);
  std::filesystem::remove(path);
}

TEST_CASE("key file: each bad input has its typed error", "[cluster][keyfile]") {
  CHECK(kind_of_text(b64(32, 3) + "\nnot base64 at all!\n") == Kind::kKeyNotBase64);
  CHECK(kind_of_text(b64(32, 3).substr(0, 43) + "*") == Kind::kKeyNotBase64);
  CHECK(kind_of_text(b64(16, 3)) == Kind::kKeyWrongLength);
  CHECK(kind_of_text(b64(48, 3)) == Kind::kKeyWrongLength);
  CHECK(kind_of_text(b64(300, 3)) == Kind::kKeyWrongLength);
  CHECK(kind_of_text("") == Kind::kKeyEmpty);
  CHECK(kind_of_text("# only a comment\n\n") == Kind::kKeyEmpty);
  // The hex keys of dog-swim-node are not this format.
  CHECK(kind_of_text(std::string(64, 'a')) == Kind::kKeyWrongLength);
}

TEST_CASE("key file: the message names the file and line, on one line", "[cluster][keyfile]") {
  try {
    parse_key_text(b64(32, 1) + "\n\n" + b64(8, 1) + "\n", "/etc/dog/key");
    FAIL("accepted an 8-byte key");
  } catch (const ClusterError& e) {
    CHECK(e.kind() == Kind::kKeyWrongLength);
    CHECK(std::string(e.what()).rfind("/etc/dog/key:3:", 0) == 0);
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
  }
}

TEST_CASE("key file: missing, directory and oversized files are refused", "[cluster][keyfile]") {
  auto kind_of_file = [](const std::string& p) {
    try {
      read_key_file(p);
    } catch (const ClusterError& e) {
      return e.kind();
    }
    return Kind::kOther;
  };
  CHECK(kind_of_file("/nonexistent/dog/key") == Kind::kKeyUnreadable);
  CHECK(kind_of_file(std::filesystem::temp_directory_path().string()) == Kind::kKeyUnreadable);
  auto big = temp_file(std::string(kMaxKeyFileBytes + 1, '#'));
  CHECK(kind_of_file(big) == Kind::kKeyUnreadable);
  std::filesystem::remove(big);
}

TEST_CASE("keygen: a fresh key parses as one 32-byte key", "[cluster][keyfile]") {
  const std::string a = generate_key(), b = generate_key();
  CHECK(a != b);
  auto keys = parse_key_text(a + "\n", "gen");
  REQUIRE(keys.size() == 1);
}

namespace {
struct Parsed {
  ClusterFlags flags;
  CLI::App cli{"test"};
  std::string http = "127.0.0.1:8080";
  explicit Parsed(std::vector<std::string> args = {}) {
    cli.add_option("--http", http);
    add_cluster_flags(cli, flags);
    add_env_names(cli);
    std::vector<const char*> argv{"dog-test"};
    for (auto& a : args) argv.push_back(a.c_str());
    cli.parse(static_cast<int>(argv.size()), argv.data());
  }
};

Kind option_error(const ClusterFlags& f) {
  try {
    cluster_options_from(f, "h", "dog-test");
  } catch (const ClusterError& e) {
    return e.kind();
  }
  return Kind::kOther;
}
}  // namespace

TEST_CASE("flags: no --bind is a single node, and cluster flags alone are refused", "[cluster][flags]") {
  Parsed none;
  CHECK_FALSE(cluster_options_from(none.flags, "h", "dog-test").has_value());
  Parsed join({"--join", "127.0.0.1:7000"});
  CHECK(option_error(join.flags) == Kind::kBadOption);
}

TEST_CASE("flags: --bind needs a key file and says how to make one", "[cluster][flags]") {
  Parsed p({"--bind", "127.0.0.1:7000"});
  try {
    cluster_options_from(p.flags, "h", "dog-test");
    FAIL("accepted --bind without a key");
  } catch (const ClusterError& e) {
    CHECK(e.kind() == Kind::kBadOption);
    CHECK(std::string(e.what()).find("dog-test keygen") != std::string::npos);
  }
}

TEST_CASE("flags: values reach ClusterOptions and --join splits on commas", "[cluster][flags]") {
  Parsed p({"--bind", "127.0.0.1:7000", "--cluster-key-file", "k", "--join", "a:1,b:2", "--name",
            "n1", "--preset", "local", "--join-timeout-s", "2.5", "--http", "127.0.0.1:9"});
  auto o = cluster_options_from(p.flags, p.http, "dog-test");
  REQUIRE(o);
  CHECK(o->bind == "127.0.0.1:7000");
  CHECK(o->join == std::vector<std::string>{"a:1", "b:2"});
  CHECK(o->name == "n1");
  CHECK(o->preset == "local");
  CHECK(o->join_timeout == std::chrono::milliseconds(2500));
  CHECK(o->http_addr == "127.0.0.1:9");
  CHECK_THROWS_AS(Parsed({"--preset", "moon"}), CLI::ValidationError);
}

TEST_CASE("flags: DOG_<NAME> environment variables, and the command line wins", "[cluster][flags]") {
  ::setenv("DOG_BIND", "127.0.0.1:7100", 1);
  ::setenv("DOG_JOIN", "10.0.0.1:7000,10.0.0.2:7000", 1);
  ::setenv("DOG_CLUSTER_KEY_FILE", "/k", 1);
  ::setenv("DOG_JOIN_TIMEOUT_S", "4", 1);
  ::setenv("DOG_HTTP", "127.0.0.1:9999", 1);
  Parsed env;
  Parsed flag({"--bind", "127.0.0.1:7200"});
  for (const char* v : {"DOG_BIND", "DOG_JOIN", "DOG_CLUSTER_KEY_FILE", "DOG_JOIN_TIMEOUT_S", "DOG_HTTP"})
    ::unsetenv(v);
  CHECK(env.flags.bind == "127.0.0.1:7100");
  CHECK(env.flags.join == std::vector<std::string>{"10.0.0.1:7000", "10.0.0.2:7000"});
  CHECK(env.flags.key_file == "/k");
  CHECK(env.flags.join_timeout_s == 4);
  CHECK(env.http == "127.0.0.1:9999");  // the app's own flags too
  CHECK(flag.flags.bind == "127.0.0.1:7200");
}

TEST_CASE("flags: keygen is a subcommand", "[cluster][flags]") {
  Parsed k({"keygen"});
  CHECK(keygen_requested(k.flags));
  Parsed n;
  CHECK_FALSE(keygen_requested(n.flags));
}
