// node/ops/config.h: TOML files over the defaults, under DOG_* and flags; strict keys and types;
// --print-config's TOML reads back to the same configuration.
#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "node/ops/config.h"

namespace {

using dog::ops::ConfigError;
using Kind = ConfigError::Kind;

// The shape of a dog::App command line: text, integers with ranges, a float, a list, a choice.
struct Flags {
  std::string http = "127.0.0.1:8080";
  int64_t limit = 2;
  int64_t drain_timeout = 10;
  double join_timeout_s = 30;
  size_t max_objects = 100'000;
  std::vector<std::string> join;
  std::string preset = "lan";
  bool verbose = false;
  dog::ops::OpsFlags ops;
};

struct Cli {
  CLI::App app{"test app", "dog-test"};
  Flags f;
  Cli() {
    app.add_option("--http", f.http)->capture_default_str();
    app.add_option("--limit", f.limit)->check(CLI::Range(1, 1000))->capture_default_str();
    app.add_option("--drain-timeout", f.drain_timeout)->check(CLI::Range(1, 3600))->capture_default_str();
    app.add_option("--join-timeout-s", f.join_timeout_s)->capture_default_str();
    app.add_option("--max-objects", f.max_objects)->capture_default_str();
    app.add_option("--join", f.join)->delimiter(',');
    app.add_option("--preset", f.preset)->check(CLI::IsMember({"lan", "wan", "local"}))->capture_default_str();
    app.add_flag("--verbose", f.verbose);
    dog::ops::add_ops_flags(app, f.ops);
    for (CLI::Option* o : app.get_options())  // what node/cluster add_env_names does
      if (!o->get_lnames().empty() && o->get_lnames().front() == "limit") o->envname("DOGTEST_LIMIT");
    dog::ops::capture_defaults(app);
  }
  void parse(std::vector<std::string> args) {
    std::vector<const char*> argv{"dog-test"};
    for (auto& a : args) argv.push_back(a.c_str());
    app.parse(static_cast<int>(argv.size()), argv.data());
  }
};

struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& text) {
    static int n = 0;
    path = std::filesystem::temp_directory_path() /
           ("dog-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".toml");
    std::ofstream(path) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
  std::string str() const { return path.string(); }
};

// The error apply_config_file throws for `text`, checked to be one line naming the file.
ConfigError refused(const std::string& text) {
  TempFile file(text);
  Cli c;
  c.parse({});
  try {
    dog::ops::apply_config_file(c.app, file.str());
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    CHECK(what.find('\n') == std::string::npos);
    CHECK(what.rfind(file.str(), 0) == 0);
    CHECK(e.file() == file.str());
    return e;
  }
  FAIL("the file was accepted: " << text);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("a config file sets every kind of flag by its long name", "[config]") {
  TempFile file(
      "# a comment\n"
      "http = \"0.0.0.0:9000\"\n"
      "limit = 7\n"
      "drain-timeout = 20\n"
      "join-timeout-s = 1.5\n"
      "max-objects = 50\n"
      "join = [\"10.0.0.1:7946\", \"10.0.0.2:7946\"]\n"
      "preset = \"wan\"\n"
      "verbose = true\n"
      "log-level = \"debug\"\n");
  Cli c;
  c.parse({});
  dog::ops::apply_config_file(c.app, file.str());
  CHECK(c.f.http == "0.0.0.0:9000");
  CHECK(c.f.limit == 7);
  CHECK(c.f.drain_timeout == 20);
  CHECK(c.f.join_timeout_s == 1.5);
  CHECK(c.f.max_objects == 50);
  CHECK(c.f.join == std::vector<std::string>{"10.0.0.1:7946", "10.0.0.2:7946"});
  CHECK(c.f.preset == "wan");
  CHECK(c.f.verbose);
  CHECK(c.f.ops.log_level == "debug");
}

TEST_CASE("precedence: the file is under DOG_* variables, which are under flags", "[config]") {
  TempFile file("limit = 3\nhttp = \"127.0.0.1:1\"\n");
  ::unsetenv("DOGTEST_LIMIT");
  {
    Cli c;
    c.parse({});
    dog::ops::apply_config_file(c.app, file.str());
    CHECK(c.f.limit == 3);  // file over the default
  }
  ::setenv("DOGTEST_LIMIT", "4", 1);
  {
    Cli c;
    c.parse({});
    dog::ops::apply_config_file(c.app, file.str());
    CHECK(c.f.limit == 4);  // environment over the file
    CHECK(c.f.http == "127.0.0.1:1");
  }
  {
    Cli c;
    c.parse({"--limit", "5"});
    dog::ops::apply_config_file(c.app, file.str());
    CHECK(c.f.limit == 5);  // flag over both
  }
  ::unsetenv("DOGTEST_LIMIT");
  {
    Cli c;  // --config through the same path dog::App takes
    c.parse({"--config", file.str(), "--http", "127.0.0.1:2"});
    CHECK_FALSE(dog::ops::finish_config(c.app, c.f.ops).has_value());
    CHECK(c.f.limit == 3);
    CHECK(c.f.http == "127.0.0.1:2");
  }
}

TEST_CASE("an unknown key is refused with the file, the line and the key", "[config]") {
  ConfigError e = refused("limit = 2\n\nlimt = 3\n");
  CHECK(e.kind() == Kind::kUnknownKey);
  CHECK(e.key() == "limt");
  CHECK(std::string(e.what()).find(":3: key \"limt\": unknown key") != std::string::npos);

  ConfigError underscore = refused("drain_timeout = 3\n");
  CHECK(underscore.kind() == Kind::kUnknownKey);
  CHECK(std::string(underscore.what()).find("did you mean \"drain-timeout\"") != std::string::npos);

  CHECK(refused("[cluster]\njoin = [\"a:1\"]\n").kind() == Kind::kUnknownKey);
  CHECK(refused("config = \"other.toml\"\n").key() == "config");
  CHECK(refused("print-config = true\n").kind() == Kind::kUnknownKey);
}

TEST_CASE("a value of the wrong type is refused, naming the key and both types", "[config]") {
  ConfigError e = refused("limit = \"2\"\n");
  CHECK(e.kind() == Kind::kWrongType);
  CHECK(e.key() == "limit");
  CHECK(std::string(e.what()).find("expected an integer, found a string") != std::string::npos);

  CHECK(refused("http = 8080\n").kind() == Kind::kWrongType);
  CHECK(refused("limit = 2.5\n").kind() == Kind::kWrongType);
  CHECK(refused("http = [\"a\", \"b\"]\n").kind() == Kind::kWrongType);
  CHECK(refused("join = [\"a:1\", 2]\n").kind() == Kind::kWrongType);
  CHECK(refused("verbose = \"yes\"\n").kind() == Kind::kWrongType);
  CHECK(refused("max-objects = 1979-05-27\n").kind() == Kind::kWrongType);
  CHECK(std::string(refused("max-objects = -1\n").what()).find("expected a non-negative integer") != std::string::npos);
}

TEST_CASE("a value the flag's own check refuses is refused with its reason", "[config]") {
  ConfigError range = refused("drain-timeout = 0\n");
  CHECK(range.kind() == Kind::kBadValue);
  CHECK(range.key() == "drain-timeout");
  CHECK(refused("preset = \"moon\"\n").kind() == Kind::kBadValue);
  CHECK(refused("log-format = \"xml\"\n").kind() == Kind::kBadValue);
}

TEST_CASE("a syntax error or an unreadable file is refused in one line", "[config]") {
  ConfigError syntax = refused("limit = \n");
  CHECK(syntax.kind() == Kind::kSyntax);
  CHECK(std::string(syntax.what()).find(":1: TOML syntax error") != std::string::npos);
  CHECK(refused("limit = 2\nlimit = 3\n").kind() == Kind::kSyntax);  // a key twice

  Cli c;
  c.parse({});
  try {
    dog::ops::apply_config_file(c.app, "/nonexistent/dog.toml");
    FAIL("a missing file was accepted");
  } catch (const ConfigError& e) {
    CHECK(e.kind() == Kind::kCannotRead);
    CHECK(std::string(e.what()) == "/nonexistent/dog.toml: cannot read the config file: No such file or directory");
  }
}

TEST_CASE("deep nesting is refused before the recursive parser sees it, and brackets in strings and comments do not count", "[config]") {
  std::string deep = "join = " + std::string(100000, '[') + "\n";
  ConfigError e = refused(deep);
  CHECK(e.kind() == Kind::kSyntax);
  CHECK(std::string(e.what()).find("nested deeper than 32") != std::string::npos);
  // 40 brackets inside a string, a literal string and a comment are text, not nesting: the
  // file is judged by the key alone (unknown), not by depth.
  std::string text = "# " + std::string(40, '[') + "\nname = \"" + std::string(40, '[') + "\"\n" +
                     "nope = '" + std::string(40, '{') + "'\n";
  ConfigError unknown = refused(text);
  CHECK(unknown.kind() == Kind::kUnknownKey);
}

TEST_CASE("the printed configuration (--print-config) is TOML that --config reads back to the same configuration", "[config]") {
  TempFile file("limit = 9\njoin = [\"a:1\", \"b:2\"]\njoin-timeout-s = 0.25\n");
  ::setenv("DOGTEST_LIMIT", "11", 1);
  Cli c;
  c.parse({"--config", file.str(), "--http", "127.0.0.1:7\"x\\y", "--verbose"});
  ::unsetenv("DOGTEST_LIMIT");
  REQUIRE_FALSE(dog::ops::finish_config(c.app, c.f.ops).has_value());
  const std::string printed = dog::ops::effective_config(c.app);
  CHECK(printed.find("limit = 11\n") != std::string::npos);
  CHECK(printed.find("join = [\"a:1\", \"b:2\"]\n") != std::string::npos);
  CHECK(printed.find("http = \"127.0.0.1:7\\\"x\\\\y\"\n") != std::string::npos);
  CHECK(printed.find("drain-timeout = 10\n") != std::string::npos);  // defaults are shown too
  CHECK(printed.find("verbose = true\n") != std::string::npos);
  CHECK(printed.find("\nconfig") == std::string::npos);
  CHECK(printed.find("\nprint-config") == std::string::npos);

  TempFile again(printed);
  Cli d;
  d.parse({"--config", again.str()});
  REQUIRE_FALSE(dog::ops::finish_config(d.app, d.f.ops).has_value());
  CHECK(d.f.limit == 11);
  CHECK(d.f.http == c.f.http);
  CHECK(d.f.join == c.f.join);
  CHECK(d.f.join_timeout_s == 0.25);
  CHECK(d.f.verbose);
  CHECK(dog::ops::effective_config(d.app) == printed);
}

TEST_CASE("a file that sets nothing leaves the defaults", "[config]") {
  TempFile file("# nothing here\n");
  Cli c;
  c.parse({});
  dog::ops::apply_config_file(c.app, file.str());
  CHECK(c.f.limit == 2);
  CHECK(c.f.join.empty());
  CHECK(dog::ops::effective_config(c.app).find("join = []\n") != std::string::npos);
}
