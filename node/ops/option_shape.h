// Internal to node/ops: what kind of value a CLI11 option takes, as the config file sees it.
#pragma once

#include <string>
#include <string_view>

namespace CLI {
class Option;
}

namespace dog::ops {

enum class ValueKind { kFlag, kInt, kUint, kFloat, kText, kOther };

struct OptionShape {
  ValueKind kind = ValueKind::kOther;
  bool list = false;  // takes several values (`--join a,b`): an array in TOML
};

// From CLI11's type name ("INT", "UINT", "FLOAT", "TEXT", ...) and expected value counts.
OptionShape shape_of(const CLI::Option& o);

// True for an option a file may set and --print-config shows: it has a long name and is not
// --help, --help-all, --version, --config or --print-config.
bool configurable(const CLI::Option& o);

// "a string", "an integer", ... for messages.
std::string_view a_kind(ValueKind k);

// The shortest text that reads back as the same double ("30", "0.25", "inf", "nan").
std::string format_double(double d);

}  // namespace dog::ops
