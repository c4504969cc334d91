// --print-config: the effective configuration as TOML, and the option shapes it shares with the
// file reader (config.cc).
#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "node/ops/config.h"
#include "node/ops/log.h"
#include "node/ops/option_shape.h"

namespace dog::ops {
namespace {

// A TOML basic string: JSON's escaping, plus DEL, which TOML does not allow raw.
std::string toml_quote(std::string_view s) {
  std::string q = json_quote(s), out;
  out.reserve(q.size());
  for (char c : q) {
    if (c == '\x7f') out += "\\u007f";
    else out += c;
  }
  return out;
}

std::string toml_key(const std::string& k) {
  for (char c : k)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return toml_quote(k);
  return k;
}

// One element as a TOML value, or nullopt if the string does not parse as the option's type.
std::optional<std::string> toml_scalar(const std::string& s, ValueKind k) {
  switch (k) {
    case ValueKind::kInt: {
      int64_t v = 0;
      if (!CLI::detail::lexical_cast(s, v)) return std::nullopt;
      return std::to_string(v);
    }
    case ValueKind::kUint: {
      uint64_t v = 0;
      if (!CLI::detail::lexical_cast(s, v)) return std::nullopt;
      return std::to_string(v);
    }
    case ValueKind::kFloat: {
      double v = 0;
      if (!CLI::detail::lexical_cast(s, v)) return std::nullopt;
      return format_double(v);
    }
    case ValueKind::kFlag:
      return std::string(s == "true" || s == "1" || s == "on" || s == "yes" ? "true" : "false");
    default:
      return toml_quote(s);
  }
}

// What the option holds: the strings it was given, else its captured default.
std::vector<std::string> current_values(const CLI::Option& o, const OptionShape& shape) {
  if (o.count() > 0) return o.results();
  std::string d = o.get_default_str();
  if (!shape.list) return d.empty() && shape.kind != ValueKind::kText ? std::vector<std::string>{} : std::vector{d};
  if (d.size() >= 2 && d.front() == '[' && d.back() == ']') d = d.substr(1, d.size() - 2);
  std::vector<std::string> out;
  if (d.empty()) return out;
  for (size_t start = 0;;) {
    size_t comma = d.find(',', start);
    out.push_back(d.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

}  // namespace

OptionShape shape_of(const CLI::Option& o) {
  OptionShape s;
  s.list = o.get_items_expected_max() > 1;
  if (o.get_expected_max() == 0) {  // a flag takes no value on the command line
    s.kind = ValueKind::kFlag;
    return s;
  }
  std::string t = o.get_type_name();
  t = t.substr(0, t.find(':'));
  if (t == "INT") s.kind = ValueKind::kInt;
  else if (t == "UINT") s.kind = ValueKind::kUint;
  else if (t == "FLOAT") s.kind = ValueKind::kFloat;
  else if (t == "TEXT") s.kind = ValueKind::kText;
  return s;
}

bool configurable(const CLI::Option& o) {
  if (o.get_lnames().empty()) return false;
  const std::string& n = o.get_lnames().front();
  return n != "help" && n != "help-all" && n != "version" && n != "config" && n != "print-config";
}

std::string_view a_kind(ValueKind k) {
  switch (k) {
    case ValueKind::kFlag: return "a boolean";
    case ValueKind::kInt: return "an integer";
    case ValueKind::kUint: return "a non-negative integer";
    case ValueKind::kFloat: return "a number";
    case ValueKind::kText: return "a string";
    case ValueKind::kOther: return "a string, number or boolean";
  }
  return "a value";
}

std::string format_double(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

std::string effective_config(const CLI::App& cli) {
  std::string out = "# " + cli.get_name() +
                    ": effective configuration (defaults < --config file < DOG_* < flags); load it with --config\n";
  for (const CLI::Option* o : cli.get_options()) {
    if (!configurable(*o)) continue;
    const OptionShape shape = shape_of(*o);
    const std::string key = toml_key(o->get_lnames().front());
    std::vector<std::string> values = current_values(*o, shape);
    if (shape.kind == ValueKind::kFlag && !shape.list) {
      const bool on = o->count() > 0 ? o->as<bool>() : (!values.empty() && toml_scalar(values.back(), shape.kind) == "true");
      out += key + " = " + (on ? "true" : "false") + "\n";
      continue;
    }
    std::vector<std::string> shown;
    bool ok = true;
    for (const auto& v : values) {
      auto s = toml_scalar(v, shape.kind);
      if (!s) ok = false;
      else shown.push_back(*s);
    }
    if (!ok || (!shape.list && shown.size() != 1)) {
      out += "# " + key + " is not set\n";
      continue;
    }
    if (!shape.list) {
      out += key + " = " + shown.front() + "\n";
      continue;
    }
    out += key + " = [";
    for (size_t i = 0; i < shown.size(); ++i) out += (i ? ", " : "") + shown[i];
    out += "]\n";
  }
  return out;
}

}  // namespace dog::ops
