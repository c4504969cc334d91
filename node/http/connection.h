// Internal: one HTTP/1.1 connection. llhttp parses; this class enforces the limits and
// timeouts of HttpConfig, calls the handler one request at a time, writes responses (batched
// when requests are pipelined), and hands the socket to a WsSession on an accepted upgrade.
#pragma once

#include <llhttp.h>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "node/http/server_state.h"
#include "node/http/wire.h"

namespace dog::node {

// True if every header name is a token and no value holds CR, LF or NUL.
bool valid_response_headers(const http::Response& resp);

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(std::shared_ptr<HttpServer::State> server, asio::ip::tcp::socket socket);
  ~HttpConnection();

  asio::awaitable<void> run();

  // Server shutdown: close now if idle, else after the in-flight response.
  void drain();
  void force_close();

  // Capacity of this connection's buffers, for HttpServer::buffer_bytes().
  size_t retained_bytes() const;

 private:
  using Clock = std::chrono::steady_clock;
  enum class Phase { kIdle, kHeaders, kBody, kHandling, kWriting, kLingering };

  // llhttp callbacks (static trampolines in the .cc).
  friend struct ParserCallbacks;
  int on_message_begin();
  int on_url(const char* at, size_t len);
  int on_header_field(const char* at, size_t len);
  int on_header_value(const char* at, size_t len);
  int on_headers_complete();
  int on_body(const char* at, size_t len);
  int on_message_complete();
  int on_chunk_extension(size_t len);
  int reject(int status, const char* why);
  void commit_header();

  asio::awaitable<bool> handle_request(bool upgrade);  // false: close the connection
  asio::awaitable<bool> upgrade(http::Response& resp);
  void write_head(const http::Response& resp, bool chunked, size_t length);
  void write_connection_header(int status);
  void write_error(int status, std::string_view why);
  asio::awaitable<bool> flush();
  asio::awaitable<void> linger_and_close();
  void set_deadline(Clock::time_point t);
  void on_timer();
  void close_socket();

  std::shared_ptr<HttpServer::State> server_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point armed_for_ = Clock::time_point::max();
  bool timer_armed_ = false;
  Phase phase_ = Phase::kIdle;
  bool draining_ = false;
  bool closed_ = false;

  llhttp_t parser_;
  // Input: in_[in_off_, in_len_) is read but not yet parsed. in_ points into the loop's shared
  // read buffer while parsing runs synchronously, and into pending_ (our own copy) across any
  // co_await; an idle connection holds no read buffer.
  const char* in_ = nullptr;
  size_t in_off_ = 0;
  size_t in_len_ = 0;
  std::string pending_;
  void keep_unparsed();
  std::string out_;
  Clock::time_point header_deadline_;
  Clock::time_point body_deadline_;  // total time for a request body (HttpConfig::body_timeout)
  HeadScanner head_;                 // bare LF and obs-fold, which llhttp lets through

  http::Request req_;
  std::string field_, value_;
  bool in_value_ = false;
  bool headers_done_ = false;  // later field callbacks are trailers: bounded, then dropped
  int host_count_ = 0;
  size_t chunk_ext_bytes_ = 0;
  size_t header_bytes_ = 0;
  bool message_done_ = false;
  bool keep_alive_ = true;
  int reject_status_ = 0;
  const char* reject_why_ = "";
};

}  // namespace dog::node
