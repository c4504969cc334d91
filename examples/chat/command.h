// dog-chat: parsing of chat text, by hand. Client text is never given to a regex: libstdc++'s
// regex recurses per character, so one 100,000-space message overflowed the stack.
//
// Every function is linear in the input, allocates only its result, and accepts any bytes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace dog_chat {

// What a chat line asks for: `/g TEXT` (this Replica), `/w NAME TEXT` (one user), `/a TEXT` or
// plain text (everyone).
struct Command {
  enum class Kind { kAll, kGroup, kWhisper } kind = Kind::kAll;
  std::string target;  // kWhisper only
  std::string text;
};

// The whitespace of a regex \s in the C locale.
inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// If `s` starts with `/word` (for one of the two spellings) followed by at least one space,
// removes that and the spaces and returns true.
inline bool take_command(std::string_view& s, std::string_view shorter, std::string_view longer) {
  for (std::string_view word : {longer, shorter}) {
    if (s.size() > word.size() + 1 && s[0] == '/' && s.substr(1, word.size()) == word &&
        is_space(s[word.size() + 1])) {
      s.remove_prefix(word.size() + 1);
      while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
      return true;
    }
  }
  return false;
}

// Parses one chat line (already trimmed or not). `/w NAME` needs a space after NAME, as before.
inline Command parse_command(std::string_view line) {
  Command c;
  std::string_view s = trim(line);
  std::string_view rest = s;
  if (take_command(rest, "g", "group")) {
    c.kind = Command::Kind::kGroup;
    c.text = rest;
    return c;
  }
  rest = s;
  if (take_command(rest, "w", "msg")) {
    size_t end = 0;
    while (end < rest.size() && !is_space(rest[end])) ++end;
    if (end > 0 && end < rest.size()) {
      c.kind = Command::Kind::kWhisper;
      c.target = rest.substr(0, end);
      rest.remove_prefix(end);
      while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
      c.text = rest;
      return c;
    }
  }
  rest = s;
  if (take_command(rest, "a", "all")) {
    c.text = rest;
    return c;
  }
  c.text = s;
  return c;
}

// Decodes a query value ("%XX" escapes; "+" is a space). Nothing if an escape is malformed,
// the result is empty, or it holds a control character (C0 or DEL), which a name never needs.
inline std::optional<std::string> percent_decode(std::string_view in) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') c = ' ';
    else if (c == '%') {
      int hi = i + 1 < in.size() ? hex(in[i + 1]) : -1, lo = i + 2 < in.size() ? hex(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    out.push_back(c);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

}  // namespace dog_chat
