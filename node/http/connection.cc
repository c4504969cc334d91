#include "node/http/connection.h"

#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <algorithm>
#include <cstdio>
#include <ctime>

#include "node/http/handshake.h"
#include "node/http/ws_session.h"
#include "node/ops/log.h"

namespace dog::node {

struct ParserCallbacks {
  static HttpConnection* self(llhttp_t* p) { return static_cast<HttpConnection*>(p->data); }
  static int message_begin(llhttp_t* p) { return self(p)->on_message_begin(); }
  static int url(llhttp_t* p, const char* at, size_t n) { return self(p)->on_url(at, n); }
  static int field(llhttp_t* p, const char* at, size_t n) { return self(p)->on_header_field(at, n); }
  static int value(llhttp_t* p, const char* at, size_t n) { return self(p)->on_header_value(at, n); }
  static int headers_complete(llhttp_t* p) { return self(p)->on_headers_complete(); }
  static int body(llhttp_t* p, const char* at, size_t n) { return self(p)->on_body(at, n); }
  static int message_complete(llhttp_t* p) { return self(p)->on_message_complete(); }
  static int chunk_ext(llhttp_t* p, const char*, size_t n) { return self(p)->on_chunk_extension(n); }
  static const llhttp_settings_t* settings() {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = message_begin;
      s.on_url = url;
      s.on_header_field = field;
      s.on_header_value = value;
      s.on_headers_complete = headers_complete;
      s.on_body = body;
      s.on_message_complete = message_complete;
      s.on_chunk_extension_name = chunk_ext;
      s.on_chunk_extension_value = chunk_ext;
      return s;
    }();
    return &s;
  }
};

HttpConnection::HttpConnection(std::shared_ptr<HttpServer::State> server, asio::ip::tcp::socket socket)
    : server_(std::move(server)), socket_(std::move(socket)), timer_(server_->loop.io()) {
  std::error_code ec;
  socket_.non_blocking(true, ec);  // reads are synchronous after a readiness wait
  server_->connections.insert(this);
  server_->stats.connections_accepted++;
  server_->stats.connections_open++;
  llhttp_init(&parser_, HTTP_REQUEST, ParserCallbacks::settings());
  parser_.data = this;
}

HttpConnection::~HttpConnection() {
  server_->connections.erase(this);
  server_->stats.connections_open--;
  server_->maybe_drained();
}

// ---- llhttp callbacks: collect the request, enforce limits -------------------------------

int HttpConnection::reject(int status, const char* why) {
  reject_status_ = status;
  reject_why_ = why;
  return -1;
}

int HttpConnection::on_message_begin() {
  phase_ = Phase::kHeaders;
  header_deadline_ = Clock::now() + server_->config.header_timeout;
  set_deadline(header_deadline_);
  req_.method.clear();
  req_.target.clear();
  req_.headers.clear();
  release_if_large(req_.body);
  field_.clear();
  value_.clear();
  in_value_ = false;
  headers_done_ = false;
  host_count_ = 0;
  chunk_ext_bytes_ = 0;
  header_bytes_ = 0;
  message_done_ = false;
  return 0;
}

int HttpConnection::on_url(const char* at, size_t n) {
  if (req_.target.size() + n > server_->config.max_url_bytes) return reject(414, "request-target too long");
  req_.target.append(at, n);
  return 0;
}

void HttpConnection::commit_header() {
  if (http::iequals(field_, "host")) ++host_count_;
  req_.headers.add(std::move(field_), std::move(value_));
  field_.clear();
  value_.clear();
  in_value_ = false;
}

// After the headers, llhttp reports a chunked body's trailer fields through the same callbacks.
// They count against the header limit and are then dropped: a trailer must not pose as a
// header (RFC 9110 §6.5.1), and no handler here asks for trailers.
int HttpConnection::on_header_field(const char* at, size_t n) {
  if (headers_done_) {
    header_bytes_ += n;
    return header_bytes_ > server_->config.max_header_bytes ? reject(431, "request trailers too large") : 0;
  }
  if (in_value_) {
    if (req_.headers.size() + 1 >= server_->config.max_headers) return reject(431, "too many header fields");
    commit_header();
  }
  header_bytes_ += n;
  if (header_bytes_ > server_->config.max_header_bytes) return reject(431, "request headers too large");
  field_.append(at, n);
  return 0;
}

int HttpConnection::on_header_value(const char* at, size_t n) {
  if (headers_done_) {
    header_bytes_ += n;
    return header_bytes_ > server_->config.max_header_bytes ? reject(431, "request trailers too large") : 0;
  }
  in_value_ = true;
  header_bytes_ += n;
  if (header_bytes_ > server_->config.max_header_bytes) return reject(431, "request headers too large");
  value_.append(at, n);
  return 0;
}

int HttpConnection::on_headers_complete() {
  if (in_value_) commit_header();
  headers_done_ = true;
  req_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  req_.version_minor = parser_.http_major > 1 ? 1 : parser_.http_minor;
  // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any with more than one.
  if (host_count_ > 1) return reject(400, "more than one Host header");
  if (host_count_ == 0 && req_.version_minor >= 1) return reject(400, "missing Host header");
  if ((parser_.flags & F_CONTENT_LENGTH) && parser_.content_length > server_->config.max_body_bytes)
    return reject(413, "request body too large");
  // 100 Continue is an HTTP/1.1 interim response; an HTTP/1.0 client would take it as the answer.
  auto expect = req_.headers.get("expect");
  if (expect && http::iequals(*expect, "100-continue") && req_.version_minor >= 1)
    out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  phase_ = Phase::kBody;
  auto now = Clock::now();
  body_deadline_ = now + server_->config.body_timeout;
  set_deadline(std::min(body_deadline_, now + server_->config.idle_timeout));
  return 0;
}

int HttpConnection::on_body(const char* at, size_t n) {
  if (req_.body.size() + n > server_->config.max_body_bytes) return reject(413, "request body too large");
  req_.body.append(at, n);
  return 0;
}

int HttpConnection::on_chunk_extension(size_t n) {
  chunk_ext_bytes_ += n;
  if (chunk_ext_bytes_ > server_->config.max_header_bytes) return reject(400, "chunk extensions too long");
  return 0;
}

int HttpConnection::on_message_complete() {
  message_done_ = true;
  head_.reset();  // the next bytes start the next request's head
  keep_alive_ = llhttp_should_keep_alive(&parser_);
  phase_ = Phase::kHandling;
  // Pause so the handler runs before the next pipelined request is parsed. An upgrade pauses
  // by itself (HPE_PAUSED_UPGRADE).
  return parser_.upgrade ? 0 : HPE_PAUSED;
}


// ---- the connection loop ------------------------------------------------------------------

// Moves the unparsed rest of the input out of the loop's shared read buffer into pending_,
// before any co_await lets another connection read into that buffer.
void HttpConnection::keep_unparsed() {
  if (in_off_ >= in_len_ || in_ == pending_.data()) return;
  pending_.assign(in_ + in_off_, in_len_ - in_off_);
  in_ = pending_.data();
  in_off_ = 0;
  in_len_ = pending_.size();
}

asio::awaitable<void> HttpConnection::run() {
  auto self = shared_from_this();
  try {
    set_deadline(Clock::now() + server_->config.idle_timeout);
    for (;;) {
      while (in_off_ < in_len_) {
        const char* base = in_ + in_off_;
        size_t scanned = 0;
        auto head = head_.scan(std::string_view(base, in_len_ - in_off_), &scanned);
        if (head == HeadScanner::Result::kBareLf) reject(400, "bare LF in request head");
        if (head == HeadScanner::Result::kObsFold) reject(400, "obsolete line folding in request head");
        llhttp_errno_t err = reject_status_ != 0 ? HPE_USER : llhttp_execute(&parser_, base, in_len_ - in_off_);
        if (err == HPE_OK) {
          in_off_ = in_len_;
          break;
        }
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
          in_off_ += llhttp_get_error_pos(&parser_) - base;
          if (err == HPE_PAUSED) llhttp_resume(&parser_);
          keep_unparsed();  // other connections reuse the loop's buffer while the handler runs
          bool keep = co_await handle_request(err == HPE_PAUSED_UPGRADE);
          if (closed_) co_return;  // handed to a WebSocket, or closed by a timeout
          if (!keep || draining_) {
            // Unread pipelined input would make close() send RST, which can destroy the
            // response in flight: half-close and discard input for a bounded while first.
            if (co_await flush()) co_await linger_and_close();
            close_socket();
            co_return;
          }
          if (out_.size() >= (64 << 10) && !co_await flush()) co_return;
          continue;
        }
        // Malformed or over a limit: answer once, then close.
        server_->stats.bad_requests++;
        if (reject_status_ != 0) write_error(reject_status_, reject_why_);
        else write_error(400, llhttp_get_error_reason(&parser_));
        if (co_await flush()) co_await linger_and_close();
        close_socket();
        co_return;
      }
      in_off_ = in_len_ = 0;
      release_if_large(pending_);
      if (!out_.empty() && !co_await flush()) co_return;
      if (draining_ && phase_ == Phase::kIdle) {
        close_socket();
        co_return;
      }
      auto idle = Clock::now() + server_->config.idle_timeout;
      set_deadline(phase_ == Phase::kHeaders ? header_deadline_
                   : phase_ == Phase::kBody  ? std::min(body_deadline_, idle)
                                             : idle);
      // Wait for bytes, then read them into the loop's buffer: an idle connection holds none.
      std::error_code ec;
      co_await socket_.async_wait(asio::socket_base::wait_read, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || closed_) {
        close_socket();
        co_return;
      }
      auto& buf = server_->read_buffer();
      size_t n = socket_.read_some(asio::buffer(buf.data(), buf.size()), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) continue;
      if (ec) {
        close_socket();
        co_return;
      }
      in_ = buf.data();
      in_len_ = n;
    }
  } catch (const std::exception& e) {
    ops::warn("http_error", std::string("http connection error: ") + e.what());
    close_socket();
  }
}

asio::awaitable<bool> HttpConnection::handle_request(bool upgrade) {
  server_->stats.requests++;
  req_.id = server_->next_id++;
  set_deadline(Clock::time_point::max());  // the handler's time is not the client's fault
  bool wants_ws = req_.is_websocket_upgrade();
  if (wants_ws) {
    auto check = http::ws::check_upgrade(req_);
    if (check.status != 0) {
      server_->stats.bad_requests++;
      write_error(check.status, check.reason);
      co_return false;
    }
  }
  http::Response resp;
  try {
    resp = co_await server_->handler(req_);
  } catch (const std::exception& e) {
    server_->stats.handler_errors++;
    ops::error("request_failed", "handler failed for " + req_.method + " " + req_.target + ": " + e.what(),
               {{"method", req_.method}, {"target", req_.target}});
    resp = http::Response::text(500, "internal error\n");
  }
  if (closed_) co_return false;
  if (!valid_response_headers(resp)) {
    // A CR or LF in a handler's header would let its data write our framing (response
    // splitting): answer 500 instead, on the 101 path too.
    server_->stats.handler_errors++;
    ops::error("request_failed", "handler for " + req_.method + " " + req_.target +
               " returned a header with an invalid name or value", {{"method", req_.method}, {"target", req_.target}});
    resp = http::Response::text(500, "internal error\n");
  }
  if (resp.websocket) {
    if (wants_ws && upgrade) co_return co_await this->upgrade(resp);
    server_->stats.bad_requests++;
    write_error(426, "this resource needs a WebSocket upgrade");
    co_return false;
  }
  if (upgrade || draining_) keep_alive_ = false;  // cannot parse on after a declined upgrade
  const bool head = req_.method == "HEAD";
  const bool bodiless = resp.status < 200 || resp.status == 204 || resp.status == 304;
  if (resp.stream && !bodiless) {
    const bool chunked = req_.version_minor >= 1;
    if (!chunked) keep_alive_ = false;  // HTTP/1.0: the body ends when the connection does
    write_head(resp, chunked, 0);
    if (!head) {
      for (;;) {
        if (!co_await flush()) co_return false;
        std::optional<std::string> chunk;
        try {
          chunk = co_await resp.stream();
        } catch (const std::exception& e) {
          // Headers are gone; the only honest signal left is an incomplete body.
          server_->stats.handler_errors++;
          ops::warn("body_stream_failed", std::string("body stream failed: ") + e.what());
          close_socket();
          co_return false;
        }
        if (!chunk) break;
        if (chunk->empty()) continue;
        if (chunked) {
          char len[20];
          int k = std::snprintf(len, sizeof len, "%zx\r\n", chunk->size());
          out_.append(len, k).append(*chunk).append("\r\n");
        } else {
          out_.append(*chunk);
        }
      }
      if (chunked) out_.append("0\r\n\r\n");
    }
  } else {
    write_head(resp, false, bodiless ? 0 : resp.body.size());
    if (!head && !bodiless) out_.append(resp.body);
  }
  phase_ = Phase::kIdle;
  release_if_large(req_.body);
  co_return keep_alive_;
}

// Closing a socket with unread input makes the kernel send RST, which can destroy the error
// response before the client reads it (a client still uploading a rejected body is the common
// case). So: stop sending, discard input for a short, bounded while, then close.
asio::awaitable<void> HttpConnection::linger_and_close() {
  std::error_code ec;
  socket_.shutdown(asio::socket_base::shutdown_send, ec);
  phase_ = Phase::kLingering;
  set_deadline(Clock::now() + std::chrono::seconds(1));
  size_t discarded = 0;
  while (!closed_ && discarded < (1u << 20)) {
    co_await socket_.async_wait(asio::socket_base::wait_read, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || closed_) break;
    auto& buf = server_->read_buffer();
    size_t n = socket_.read_some(asio::buffer(buf.data(), buf.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) continue;
    if (ec) break;
    discarded += n;
  }
  close_socket();
}

// ---- timeouts -----------------------------------------------------------------------------
// One Asio timer per connection. Moving the deadline later costs nothing (the timer fires at
// the old time, sees the new deadline and re-arms); moving it earlier re-arms at once.

void HttpConnection::set_deadline(Clock::time_point t) {
  deadline_ = t;
  if (closed_ || t == Clock::time_point::max()) return;
  if (timer_armed_ && armed_for_ <= t) return;
  timer_armed_ = true;
  armed_for_ = t;
  timer_.expires_at(t);
  timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec) return;  // re-armed or closed
    self->timer_armed_ = false;
    self->on_timer();
  });
}

void HttpConnection::on_timer() {
  if (closed_) return;
  if (Clock::now() < deadline_) {
    set_deadline(deadline_);
    return;
  }
  server_->stats.timeouts++;
  if (phase_ == Phase::kHeaders || phase_ == Phase::kBody) {
    // Best effort, never blocking: tell a slow client why it is being dropped.
    std::string k408 = "HTTP/1.1 408 Request Timeout\r\nDate: ";
    k408.append(http_date(std::time(nullptr)))
        .append("\r\nContent-Length: 16\r\nConnection: close\r\n\r\nrequest timeout\n");
    std::error_code ec;
    socket_.non_blocking(true, ec);
    socket_.write_some(asio::buffer(k408), ec);
  }
  close_socket();
}

void HttpConnection::close_socket() {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  std::error_code ec;
  socket_.shutdown(asio::socket_base::shutdown_both, ec);
  socket_.close(ec);
}

void HttpConnection::drain() {
  draining_ = true;
  if (phase_ == Phase::kIdle && in_off_ == in_len_) close_socket();
}

void HttpConnection::force_close() { close_socket(); }

size_t HttpConnection::retained_bytes() const {
  return pending_.capacity() + out_.capacity() + req_.body.capacity() + req_.target.capacity() +
         field_.capacity() + value_.capacity();
}

}  // namespace dog::node
