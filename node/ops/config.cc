#include "node/ops/config.h"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <toml.hpp>
#include <vector>

#include "node/ops/log.h"
#include "node/ops/option_shape.h"

namespace dog::ops {
namespace {

using Kind = ConfigError::Kind;
using TomlValue = toml::basic_value<toml::discard_comments, std::map, std::vector>;

constexpr std::uintmax_t kMaxFileBytes = 1 << 20;  // a config file is a few lines

std::string where(const std::string& file, const TomlValue& v) {
  const auto line = v.location().line();
  return line > 0 ? file + ":" + std::to_string(line) : file;
}

std::string a_type(const TomlValue& v) {
  switch (v.type()) {
    case toml::value_t::string: return "a string";
    case toml::value_t::integer: return "an integer";
    case toml::value_t::floating: return "a float";
    case toml::value_t::boolean: return "a boolean";
    case toml::value_t::array: return "an array";
    case toml::value_t::table: return "a table";
    default: return "a date/time";
  }
}

// The first line of a toml11 message without its "[error] toml::function: " prefix.
std::string short_syntax_message(const std::string& what) {
  std::string s = what.substr(0, what.find('\n'));
  if (s.rfind("[error] ", 0) == 0) s.erase(0, 8);
  if (s.rfind("toml::", 0) == 0)
    if (auto colon = s.find(": "); colon != std::string::npos) s.erase(0, colon + 2);
  return s;
}

// The deepest nesting of arrays and inline tables in `text`, outside strings and comments.
// toml11 parses them recursively: a small file of `a=[[[[...` would overflow the stack.
size_t nesting_depth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (c == '"' || c == '\'') {
      const bool multi = text.compare(i, 3, std::string(3, c)) == 0;
      const std::string end = multi ? std::string(3, c) : std::string(1, c);
      i += end.size();
      while (i < text.size() && text.compare(i, end.size(), end) != 0) {
        if (c == '"' && text[i] == '\\') ++i;  // an escape in a basic string
        if (!multi && text[i] == '\n') break;  // unterminated: the parser reports it
        ++i;
      }
      i += end.size() - 1;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

TomlValue read_toml(const std::string& path) {
  std::error_code ec;
  const bool regular = std::filesystem::is_regular_file(path, ec);
  if (!regular) {
    const std::string why = ec ? ec.message() : std::filesystem::exists(path) ? "not a regular file" : std::strerror(ENOENT);
    throw ConfigError(Kind::kCannotRead, path, "", path + ": cannot read the config file: " + why);
  }
  if (std::filesystem::file_size(path, ec) > kMaxFileBytes)
    throw ConfigError(Kind::kCannotRead, path, "", path + ": config file larger than 1 MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(Kind::kCannotRead, path, "", path + ": cannot read the config file: " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr size_t kMaxNesting = 32;  // far deeper than any flag's value needs
  if (nesting_depth(text) > kMaxNesting)
    throw ConfigError(Kind::kSyntax, path, "", path + ": arrays or tables nested deeper than 32");
  std::istringstream parsed(text);
  try {
    return toml::parse<toml::discard_comments, std::map, std::vector>(parsed, path);
  } catch (const toml::syntax_error& e) {
    const auto line = e.location().line();
    throw ConfigError(Kind::kSyntax, path, "",
                      (line > 0 ? path + ":" + std::to_string(line) : path) + ": TOML syntax error: " +
                          short_syntax_message(e.what()));
  } catch (const std::exception& e) {
    throw ConfigError(Kind::kSyntax, path, "", path + ": TOML error: " + short_syntax_message(e.what()));
  }
}

// One scalar as the string CLI11 parses, if its TOML type fits the option's value type.
std::optional<std::string> scalar_for(const TomlValue& v, ValueKind k) {
  switch (v.type()) {
    case toml::value_t::string:
      if (k == ValueKind::kText || k == ValueKind::kOther) return v.as_string().str;
      return std::nullopt;
    case toml::value_t::integer:
      if (k == ValueKind::kUint && v.as_integer() < 0) return std::nullopt;
      if (k == ValueKind::kInt || k == ValueKind::kUint || k == ValueKind::kFloat || k == ValueKind::kOther)
        return std::to_string(v.as_integer());
      return std::nullopt;
    case toml::value_t::floating:
      if (k == ValueKind::kFloat || k == ValueKind::kOther) return format_double(v.as_floating());
      return std::nullopt;
    case toml::value_t::boolean:
      if (k == ValueKind::kFlag || k == ValueKind::kOther) return std::string(v.as_boolean() ? "true" : "false");
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

CLI::Option* find_key(CLI::App& cli, const std::string& key) {
  for (CLI::Option* o : cli.get_options())
    if (configurable(*o) && o->get_lnames().front() == key) return o;
  return nullptr;
}

// The CLI11 strings for `key = v`, or ConfigError.
std::vector<std::string> values_for(const std::string& file, const std::string& key, const TomlValue& v,
                                    const CLI::Option& o) {
  const OptionShape shape = shape_of(o);
  const std::string at = where(file, v) + ": key \"" + key + "\": ";
  std::vector<std::string> out;
  if (v.is_array()) {
    if (!shape.list) throw ConfigError(Kind::kWrongType, file, key, at + "takes one value, not an array");
    for (const TomlValue& e : v.as_array()) {
      auto s = scalar_for(e, shape.kind);
      if (!s) throw ConfigError(Kind::kWrongType, file, key, at + "expected an array of " + std::string(a_kind(shape.kind)) + ", found " + a_type(e) + " in it");
      out.push_back(*s);
    }
    return out;
  }
  auto s = scalar_for(v, shape.kind);
  if (!s) throw ConfigError(Kind::kWrongType, file, key, at + "expected " + std::string(a_kind(shape.kind)) + ", found " + a_type(v));
  out.push_back(*s);
  return out;
}

}  // namespace

void add_ops_flags(CLI::App& cli, OpsFlags& f) {
  const std::string group = "Operations";
  cli.add_option("--config", f.config_file, "TOML file of flag values (keys: the long flag names)")->group(group);
  cli.add_flag("--print-config", f.print_config, "print the effective configuration as TOML and exit")->group(group);
  cli.add_option("--log-level", f.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str()
      ->group(group);
  cli.add_option("--log-format", f.log_format, "text (human, the default), logfmt or json (one line per event)")
      ->check(CLI::IsMember({"text", "logfmt", "json"}))
      ->capture_default_str()
      ->group(group);
}

void capture_defaults(CLI::App& cli) {
  for (CLI::Option* o : cli.get_options())
    if (configurable(*o)) o->capture_default_str();
}

void apply_config_file(CLI::App& cli, const std::string& path) {
  const TomlValue root = read_toml(path);
  if (!root.is_table()) throw ConfigError(Kind::kSyntax, path, "", path + ": not a TOML document");
  // Check every key before setting any, so a refused file changes nothing it could have refused.
  std::vector<std::pair<CLI::Option*, std::vector<std::string>>> sets;
  for (const auto& [key, v] : root.as_table()) {
    const std::string at = where(path, v) + ": key \"" + key + "\": ";
    if (v.is_table())
      throw ConfigError(Kind::kUnknownKey, path, key, at + "sections are not used; write the flags as top-level keys");
    CLI::Option* o = find_key(cli, key);
    if (!o) {
      std::string hint;
      if (key == "config" || key == "print-config") {
        hint = " (only on the command line or in the environment)";
      } else {
        std::string dashed = key;
        for (char& c : dashed) c = c == '_' ? '-' : c;
        if (dashed != key && find_key(cli, dashed)) hint = " (did you mean \"" + dashed + "\"? keys are spelt like the flags)";
      }
      throw ConfigError(Kind::kUnknownKey, path, key, at + "unknown key" + hint);
    }
    sets.emplace_back(o, values_for(path, key, v, *o));
  }
  for (auto& [o, values] : sets) {
    if (o->count() > 0) continue;  // a flag or DOG_* variable set it: they win
    const std::string key = o->get_lnames().front();
    try {
      o->add_result(values);
      o->run_callback();
    } catch (const CLI::Error& e) {
      throw ConfigError(Kind::kBadValue, path, key, where(path, root.as_table().at(key)) + ": key \"" + key + "\": " + e.what());
    }
  }
}

std::optional<int> finish_config(CLI::App& cli, const OpsFlags& f) {
  auto set_up_logging = [&f] {
    configure(parse_level(f.log_level).value_or(Level::kInfo), parse_log_format(f.log_format).value_or(LogFormat::kText));
  };
  set_up_logging();  // from flags and DOG_*, so a refused file is reported in the format asked for
  if (!f.config_file.empty()) {
    try {
      apply_config_file(cli, f.config_file);
    } catch (const ConfigError& e) {
      error("config_refused", e.what(), {{"file", e.file()}, {"key", e.key()}});
      return 2;
    }
    set_up_logging();
  }
  if (f.print_config) {
    const std::string text = effective_config(cli);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return 0;
  }
  return std::nullopt;
}

}  // namespace dog::ops
