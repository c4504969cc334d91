#include "node/admin/http_client.h"

#include <llhttp.h>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <array>
#include <cctype>
#include <functional>
#include <memory>

namespace dog::admin {

std::string HttpResult::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < k.size() && same; ++i)
      same = std::tolower(static_cast<unsigned char>(k[i])) == std::tolower(static_cast<unsigned char>(name[i]));
    if (same) return v;
  }
  return "";
}

std::string query_escape(std::string_view v) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

namespace {

using Kind = AdminCallError::Kind;

// llhttp callbacks collect the response; the parser owns no memory of ours.
struct Parse {
  HttpResult result;
  std::string field;
  bool in_value = false;
  bool complete = false;
  bool head = false;  // a response to HEAD has no body whatever its Content-Length says
};

Parse& of(llhttp_t* p) { return *static_cast<Parse*>(p->data); }

std::pair<std::string, std::string> split_host_port(const std::string& hp) {
  auto colon = hp.rfind(':');
  if (colon == std::string::npos || colon + 1 == hp.size())
    throw AdminCallError(Kind::kBadAddress, "'" + hp + "' is not HOST:PORT");
  std::string host = hp.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, hp.substr(colon + 1)};
}

}  // namespace

HttpResult http_call(const std::string& host_port, const std::string& method, const std::string& target,
                     std::chrono::milliseconds timeout, size_t max_bytes, const std::string& body) {
  auto [host, port] = split_host_port(host_port);
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  asio::ip::tcp::socket socket(io);
  std::error_code ec;
  auto endpoints = resolver.resolve(host, port, ec);
  if (ec) throw AdminCallError(Kind::kBadAddress, "cannot resolve " + host_port + ": " + ec.message());

  const std::string request = method + " " + target + " HTTP/1.1\r\nHost: " + host_port +
                              "\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\nUser-Agent: dogctl\r\n\r\n" + body;
  std::string raw;
  std::error_code failure;
  bool connected = false;
  auto buf = std::make_shared<std::array<char, 16384>>();
  std::function<void()> read_more = [&] {
    socket.async_read_some(asio::buffer(*buf), [&](std::error_code e, size_t n) {
      raw.append(buf->data(), n);
      if (raw.size() > max_bytes) {
        failure = asio::error::message_size;
        return;
      }
      if (e) {
        if (e != asio::error::eof) failure = e;
        return;
      }
      read_more();
    });
  };
  asio::async_connect(socket, endpoints, [&](std::error_code e, const asio::ip::tcp::endpoint&) {
    if (e) {
      failure = e;
      return;
    }
    connected = true;
    asio::async_write(socket, asio::buffer(request), [&](std::error_code we, size_t) {
      if (we) failure = we;
      else read_more();
    });
  });
  io.run_for(timeout);
  if (!io.stopped()) {
    throw AdminCallError(Kind::kTimeout, (connected ? "no complete answer from " : "cannot connect to ") + host_port +
                                             " within " + std::to_string(timeout.count()) + " ms");
  }
  if (failure == asio::error::message_size)
    throw AdminCallError(Kind::kTooLarge, "the answer from " + host_port + " is over " + std::to_string(max_bytes) + " bytes");
  if (failure) {
    throw AdminCallError(connected ? Kind::kIo : Kind::kConnect,
                         (connected ? "reading from " : "cannot connect to ") + host_port + ": " + failure.message());
  }

  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
    auto& s = of(p);
    if (s.in_value || s.result.headers.empty()) s.result.headers.emplace_back();
    if (s.in_value) s.in_value = false;
    s.result.headers.back().first.append(at, n);
    return 0;
  };
  settings.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
    auto& s = of(p);
    s.in_value = true;
    s.result.headers.back().second.append(at, n);
    return 0;
  };
  settings.on_body = [](llhttp_t* p, const char* at, size_t n) {
    of(p).result.body.append(at, n);
    return 0;
  };
  settings.on_headers_complete = [](llhttp_t* p) { return of(p).head ? 1 : 0; };
  settings.on_message_complete = [](llhttp_t* p) {
    of(p).complete = true;
    return 0;
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &settings);
  Parse parse;
  parse.head = method == "HEAD";
  parser.data = &parse;
  auto err = llhttp_execute(&parser, raw.data(), raw.size());
  if (err == HPE_OK && !parse.complete) err = llhttp_finish(&parser);  // a body delimited by the close
  if ((err != HPE_OK && err != HPE_PAUSED_UPGRADE) || !parse.complete)
    throw AdminCallError(Kind::kBadResponse, "malformed answer from " + host_port);
  parse.result.status = parser.status_code;
  return parse.result;
}

}  // namespace dog::admin
