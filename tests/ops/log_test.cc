// node/ops/log.h: the three formats, escaping (one line whatever the data), levels, the sink.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "node/ops/log.h"

namespace {

using dog::ops::Field;
using dog::ops::Level;
using dog::ops::LogFormat;

const auto kTs = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'764'780'000'123));

std::string line(LogFormat f, std::string_view msg, std::vector<Field> fields, Level l = Level::kInfo) {
  return dog::ops::format_record({l, "member_joined", msg, fields}, f, kTs);
}

// Every byte value, including NUL, newlines, DEL, a lone continuation byte and a cut UTF-8 sequence.
std::string hostile() {
  std::string s = "a\nb\r\"c\\ d=e\t";
  for (int c = 0; c < 256; ++c) s += static_cast<char>(c);
  return s + "é\xe2\x82";
}

}  // namespace

TEST_CASE("text lines are 'dog: ' and the sentence, as before structured logs", "[log]") {
  CHECK(line(LogFormat::kText, "cluster members 3", {{"members", 3}}) == "dog: cluster members 3");
  CHECK(line(LogFormat::kText, "request failed: bad\nthing\x01", {}) == "dog: request failed: bad\\nthing\\x01");
  CHECK(line(LogFormat::kText, hostile(), {}).find('\n') == std::string::npos);
}

TEST_CASE("JSON lines parse back to the same keys and values, in order", "[log]") {
  const std::string l = line(LogFormat::kJson, hostile(), {{"node", "n\"1"}, {"members", 3}, {"up", true}});
  CHECK(l.find('\n') == std::string::npos);
  auto j = nlohmann::ordered_json::parse(l);
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"ts", "level", "event", "msg", "node", "members", "up"});
  CHECK(j["ts"] == "2025-12-03T16:40:00.123Z");
  CHECK(j["level"] == "info");
  CHECK(j["event"] == "member_joined");
  CHECK(j["node"] == "n\"1");
  CHECK(j["members"] == 3);
  CHECK(j["up"] == true);
  // Valid UTF-8 survives; each invalid byte becomes U+FFFD.
  const std::string msg = j["msg"];
  CHECK(msg.rfind("a\nb\r\"c\\ d=e\t", 0) == 0);
  CHECK(msg.find("é") != std::string::npos);
  CHECK(msg.find("\xef\xbf\xbd") != std::string::npos);
}

TEST_CASE("logfmt values are bare when plain and JSON-quoted otherwise", "[log]") {
  CHECK(line(LogFormat::kLogfmt, "serving on http://127.0.0.1:1", {{"http", "127.0.0.1:1"}, {"n", -4}},
             Level::kWarn) ==
        "ts=2025-12-03T16:40:00.123Z level=warn event=member_joined msg=\"serving on http://127.0.0.1:1\" "
        "http=127.0.0.1:1 n=-4");
  CHECK(line(LogFormat::kLogfmt, "x", {{"empty", ""}, {"eq", "a=b"}, {"q", "say \"hi\""}}) ==
        "ts=2025-12-03T16:40:00.123Z level=info event=member_joined msg=x empty=\"\" eq=\"a=b\" q=\"say \\\"hi\\\"\"");
  const std::string l = line(LogFormat::kLogfmt, hostile(), {{"k", hostile()}});
  CHECK(l.find('\n') == std::string::npos);
  CHECK(l.find('\r') == std::string::npos);
}

TEST_CASE("levels and formats parse by name and filter below the configured level", "[log]") {
  CHECK(dog::ops::parse_level("warn") == Level::kWarn);
  CHECK_FALSE(dog::ops::parse_level("WARN").has_value());
  CHECK(dog::ops::parse_log_format("json") == LogFormat::kJson);
  CHECK_FALSE(dog::ops::parse_log_format("xml").has_value());

  std::vector<std::string> lines;
  dog::ops::set_sink([&](std::string_view l) { lines.emplace_back(l); });
  dog::ops::configure(Level::kWarn, LogFormat::kJson);
  dog::ops::debug("a", "hidden");
  dog::ops::info("b", "hidden");
  dog::ops::warn("relay_closed", "shown", {{"code", 1012}});
  dog::ops::error("c", "shown too");
  dog::ops::configure(Level::kInfo, LogFormat::kText);
  dog::ops::set_sink(nullptr);
  REQUIRE(lines.size() == 2);
  CHECK(nlohmann::json::parse(lines[0])["event"] == "relay_closed");
  CHECK(nlohmann::json::parse(lines[0])["code"] == 1012);
  CHECK(nlohmann::json::parse(lines[1])["level"] == "error");
}
