// Configuration files and the operations flags of every dog::App (node/runtime/app.cc):
//
//   --config FILE              TOML; its keys are the long flag names (see below)
//   --print-config             print the effective configuration as TOML (loadable by --config), exit 0
//   --log-level LEVEL          debug, info (default), warn or error
//   --log-format FORMAT        text (default), logfmt or json (node/ops/log.h)
//
// Precedence, lowest first: the built-in defaults (with the --preset's membership timing), the
// file, DOG_<NAME> environment variables, flags on the command line.
//
// The file: flat `key = value` lines, no sections. A key is a long flag name exactly as on the
// command line, with '-' (`drain-timeout = 10`, `cluster-key-file = "/etc/dog/key"`); a value
// has the flag's type: a string for text flags, an integer for integer flags, an integer or a
// float for seconds given as float, a boolean for on/off flags, and for list flags (`join`) an
// array of strings or one string. Anything else is refused with one line naming the file, the
// line, the key and why (ConfigError): an unknown key (with a hint when it is spelt with '_'),
// a table, a value of the wrong type, a value the flag's own check refuses (a range, a choice),
// `config`/`print-config` inside a file, a TOML syntax error, an unreadable file.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace CLI {
class App;
}

namespace dog::ops {

struct OpsFlags {
  std::string config_file;
  bool print_config = false;
  std::string log_level = "info";
  std::string log_format = "text";
};

// A refused configuration file. what() is one operator line: "FILE[:LINE]: key "K": why".
class ConfigError : public std::runtime_error {
 public:
  enum class Kind { kCannotRead, kSyntax, kUnknownKey, kWrongType, kBadValue };
  ConfigError(Kind kind, std::string file, std::string key, std::string message)
      : std::runtime_error(message), kind_(kind), file_(std::move(file)), key_(std::move(key)) {}
  Kind kind() const { return kind_; }
  const std::string& file() const { return file_; }
  const std::string& key() const { return key_; }  // empty for kCannotRead and kSyntax

 private:
  Kind kind_;
  std::string file_, key_;
};

// Adds the four flags above to `cli`. `flags` must outlive parsing.
void add_ops_flags(CLI::App& cli, OpsFlags& flags);

// Records each option's current value as its default string, so --print-config can show what
// an option that nothing set holds. Call after every option is added, before parsing.
void capture_defaults(CLI::App& cli);

// Sets from the TOML file `path` every option of `cli` that neither a flag nor DOG_* set (call
// after cli.parse). Throws ConfigError; options set before the error stay set.
void apply_config_file(CLI::App& cli, const std::string& path);

// The effective configuration of `cli`'s long options as TOML (without --config and
// --print-config); `--config` of this text gives the same configuration.
std::string effective_config(const CLI::App& cli);

// What dog::App runs right after cli.parse: sets up logging, reads the file named by --config
// (or DOG_CONFIG), sets up logging again with the result, and handles --print-config. Returns
// an exit code when the process should stop: 0 after --print-config, 2 after a refused file
// (one line logged). nullopt: go on.
std::optional<int> finish_config(CLI::App& cli, const OpsFlags& flags);

}  // namespace dog::ops
