#include "node/http/ws_session.h"

#include <sys/socket.h>

#include <asio/post.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <cstdio>

#include "node/ops/log.h"


namespace dog::node {

namespace ws = http::ws;

WsSession::WsSession(std::shared_ptr<HttpServer::State> server, asio::ip::tcp::socket socket,
                     std::shared_ptr<http::WebSocketHandler> handler, uint64_t id)
    : server_(std::move(server)),
      socket_(std::move(socket)),
      handler_(std::move(handler)),
      id_(id),
      decoder_(ws::Role::kServer, server_->config.max_ws_message_bytes) {
  server_->sockets.insert(this);
  server_->stats.ws_opened++;
  server_->stats.ws_open++;
}

WsSession::~WsSession() {
  server_->sockets.erase(this);
  if (server_->sockets.empty()) server_->keepalive_timer.cancel();  // no pending wait outlives the sessions
  server_->stats.ws_open--;
  server_->maybe_drained();
}

void WsSession::start(std::string_view leftover) {
  auto self = shared_from_this();
  std::error_code nb;
  socket_.non_blocking(true, nb);  // once: flush() writes directly and must never block
  // Hooks run on a strong reference of their own: a send() inside a hook that overflows the cap
  // tears the session down (finish() drops handler_), and the hook must not be freed mid-call.
  auto handler = handler_;
  try {
    handler->on_open(self);
  } catch (const std::exception& e) {
    ops::error("hook_threw", std::string("websocket on_open threw: ") + e.what(), {{"hook", "on_open"}});
    return abort(ws::close_code::kInternalError, "internal error");
  }
  if (!leftover.empty() && state_ != State::kClosed) decoder_.feed(leftover, *this);
  if (state_ != State::kClosed) read();
  arm_keepalive_sweep(server_);
}

WsSession::Closing& WsSession::closing() {
  if (!closing_) closing_ = std::make_unique<Closing>(server_->loop.io());
  return *closing_;
}

void WsSession::pause_reading() {
  paused_ = true;
  if (state_ != State::kClosed && !paused_self_) paused_self_ = shared_from_this();
}

void WsSession::resume_reading() {
  if (!paused_) return;
  auto self = std::move(paused_self_);  // released when this call returns, after read() armed
  paused_ = false;
  read();
}

void WsSession::read() {
  if (reading_ || paused_ || state_ == State::kClosed) return;
  reading_ = true;
  socket_.async_wait(asio::socket_base::wait_read, [self = shared_from_this()](std::error_code ec) {
    self->reading_ = false;
    if (self->state_ == State::kClosed) return;
    if (ec) return self->finish(self->close_code_, self->close_reason());
    self->read_ready();
  });
}

// Reads after readiness, into the loop's shared buffer: the decoder copies what it keeps. A
// read that fills the buffer is followed by another at once (up to four per turn, for
// fairness), saving a readiness round trip when a burst is larger than the buffer.
void WsSession::read_ready() {
  auto& buf = server_->read_buffer();
  for (int i = 0; i < 4; ++i) {
    std::error_code ec;
    size_t n = socket_.read_some(asio::buffer(buf.data(), buf.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec) {
      // The peer went away without a close frame (or after ours): 1006 unless we already
      // agreed on a code in the closing handshake.
      return finish(close_code_, close_reason());
    }
    heard_ = true;
    decoder_.feed(std::string_view(buf.data(), n), *this);
    if (n < buf.size() || paused_ || state_ == State::kClosed) break;
  }
  read();
}

void WsSession::on_message(std::string_view payload, bool text) {
  if (state_ != State::kOpen || !handler_) return;  // closing: drop data, keep reading for the close frame
  server_->stats.ws_messages_in++;
  server_->stats.ws_bytes_in += payload.size();
  auto handler = handler_;  // strong for the whole call, as in start()
  try {
    handler->on_message(shared_from_this(), payload, text);
  } catch (const std::exception& e) {
    ops::error("hook_threw", std::string("websocket on_message threw: ") + e.what(), {{"hook", "on_message"}});
    send_close(ws::close_code::kInternalError, "internal error");
  }
}

void WsSession::on_ping(std::string_view payload) {
  if (close_sent_) return;
  std::string frame;
  ws::encode_frame(frame, ws::Opcode::kPong, payload);
  enqueue(frame);
}

void WsSession::on_pong(std::string_view) {}

void WsSession::arm_keepalive_sweep(const std::shared_ptr<HttpServer::State>& server) {
  auto interval = server->config.ws_ping_interval;
  if (interval.count() <= 0 || server->keepalive_armed) return;
  server->keepalive_armed = true;
  server->keepalive_timer.expires_after(interval);
  // Weak: the timer lives in the State, and must not keep it alive.
  server->keepalive_timer.async_wait([weak = std::weak_ptr<HttpServer::State>(server)](std::error_code ec) {
    auto server = weak.lock();
    if (!server) return;
    server->keepalive_armed = false;
    if (server->sockets.empty()) return;  // cancelled by the last session: the next one re-arms it
    if (!ec) {
      // keepalive_tick() runs no handler code, so the set does not change under this walk; the
      // aborts (which do run on_close) come after it.
      std::vector<std::shared_ptr<WsSession>> dead;
      for (WsSession* s : server->sockets)
        if (s->keepalive_tick()) dead.push_back(s->shared_from_this());
      for (auto& s : dead) {
        server->stats.timeouts++;
        s->abort(ws::close_code::kAbnormal, "peer stopped answering pings");
      }
    }
    arm_keepalive_sweep(server);  // also after a cancel that a new session outlived
  });
}

bool WsSession::keepalive_tick() {
  if (state_ == State::kClosed) return false;
  if (heard_) {
    heard_ = false;
    ping_outstanding_ = false;
    return false;
  }
  if (paused_) return false;  // we stopped reading it: its pong would not be seen
  if (ping_outstanding_) return true;
  if (close_sent_) return false;  // the close handshake has its own deadline
  ping_outstanding_ = true;
  std::string ping;
  ws::encode_frame(ping, ws::Opcode::kPing, "");
  queue_.push_owned(ping);  // past the cap, like a close frame: tiny, and overflow() runs hooks
  schedule_flush();
  return false;
}

void WsSession::on_close(uint16_t code, std::string_view reason) {
  peer_closed_ = true;
  if (!close_sent_) {
    // Echo the peer's code (RFC 6455 §5.5.1); a close without a code is answered with 1000.
    close_code_ = code;
    set_close_reason(reason);
    send_close(code == ws::close_code::kNoStatus ? ws::close_code::kNormal : code, reason);
  }
  maybe_finish();
}

void WsSession::on_protocol_error(uint16_t code, std::string_view why) {
  server_->stats.ws_protocol_errors++;
  protocol_error_ = true;
  close_code_ = code;
  set_close_reason(why);
  send_close(code, why);  // then close without waiting: the peer already broke the protocol
  maybe_finish();
}

// The TCP connection closes once our close frame is written and the peer has either sent its
// own or broken the protocol.
void WsSession::maybe_finish() {
  if (close_sent_ && (peer_closed_ || decoder_.failed()) && !writing_ && queue_.empty())
    finish(close_code_, close_reason());
}

// True if `extra` more bytes stay within the per-socket send cap.
bool WsSession::fits(size_t extra) const {
  return buffered_bytes() + extra <= server_->config.max_ws_send_queue_bytes;
}

// The peer is not keeping up: close it with 1013 rather than buffer without bound. What the
// kernel has not started on is dropped (counted here, never silently), so the close frame is
// next on the wire; the close handshake is bounded by ws_close_timeout as usual.
bool WsSession::overflow() {
  if (state_ != State::kOpen) return false;
  ops::warn("slow_consumer", "websocket receiver too slow; closing", {{"queued_bytes", buffered_bytes()}});
  server_->stats.ws_overflow_drops++;
  queue_.drop_unstarted();
  backlogged_ = false;
  notify_drained();  // nothing is held back for this socket any more: a fan-out lets go now
  close_code_ = kTryAgainLater;
  set_close_reason("receiver too slow");
  send_close(close_code_, close_reason());
  return false;
}

// Armed when the queue first passes kBacklogBytes; cancelled once it is fully written.
void WsSession::arm_slow_deadline() {
  auto timeout = server_->config.ws_slow_timeout;
  if (timeout.count() <= 0) return;
  close_timer().expires_after(timeout);  // the close timer is free while the socket is open
  close_timer().async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec && self->state_ == State::kOpen && self->backlogged_) self->overflow();
  });
}

bool WsSession::send(std::string_view data, bool text) {
  if (state_ != State::kOpen || close_sent_) return false;
  constexpr size_t kMaxHeader = 14;
  if (!fits(data.size() + kMaxHeader)) return overflow();
  std::string& tail = queue_.owned_tail();
  size_t before = tail.size();
  ws::encode_frame(tail, text ? ws::Opcode::kText : ws::Opcode::kBinary, data);
  queue_.bytes_added(tail.size() - before);
  server_->stats.ws_messages_out++;
  schedule_flush();
  return true;
}

bool WsSession::send_shared(const http::SharedFrames& frames) {
  if (state_ != State::kOpen || close_sent_ || !frames) return false;
  if (!fits(frames->size())) return overflow();
  queue_.push_shared(frames);  // a reference: every recipient shares the one buffer
  server_->stats.ws_messages_out++;
  schedule_flush();
  return true;
}

bool WsSession::send_encoded(std::string_view frames) {
  if (state_ != State::kOpen || close_sent_) return false;
  server_->stats.ws_messages_out++;
  return enqueue(frames);
}

bool WsSession::enqueue(std::string_view bytes) {
  if (state_ == State::kClosed) return false;
  if (!fits(bytes.size())) return overflow();
  queue_.push_owned(bytes);
  schedule_flush();
  return true;
}

void WsSession::close(uint16_t code, std::string_view reason) {
  if (state_ != State::kOpen) return;
  if (!ws::valid_close_code(code)) code = ws::close_code::kNormal;
  close_code_ = code;
  set_close_reason(reason);
  send_close(code, reason);
}

void WsSession::going_away() { close(ws::close_code::kGoingAway, "server shutting down"); }

void WsSession::send_close(uint16_t code, std::string_view reason) {
  if (close_sent_ || state_ == State::kClosed) return;
  close_sent_ = true;
  state_ = State::kClosing;
  std::string frame;
  ws::encode_frame(frame, ws::Opcode::kClose, ws::close_payload(code, reason));
  queue_.push_owned(frame);  // a close frame is allowed past the cap: it is tiny and final
  schedule_flush();
  // Bound the wait for the peer's close frame.
  close_timer().expires_after(server_->config.ws_close_timeout);
  close_timer().async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec && self->state_ != State::kClosed) self->finish(self->close_code_, self->close_reason());
  });
}

// Batches every frame queued during this loop turn into one write per socket, and every socket
// with frames queued into one posted handler.
void WsSession::schedule_flush() {
  if (flush_scheduled_ || writing_) return;
  flush_scheduled_ = true;
  server_->flush_list.push_back(weak_from_this());
  if (server_->flush_posted) return;
  server_->flush_posted = true;
  asio::post(socket_.get_executor(), [server = server_] { flush_all(server); });
}

void WsSession::flush_all(const std::shared_ptr<HttpServer::State>& server) {
  server->flush_posted = false;
  std::vector<std::weak_ptr<WsSession>> list;
  list.swap(server->flush_list);  // sends made by flushes below start a new list (and handler)
  for (auto& weak : list) {
    if (auto self = weak.lock()) {
      self->flush_scheduled_ = false;
      self->flush();
    }
  }
  list.clear();
  if (server->flush_list.empty()) server->flush_list.swap(list);  // keep the capacity
}

// One sendmsg (or send(), for a single piece) carries everything queued (up to kMaxIov pieces). Whatever the kernel did not
// take waits for writability, and then again leaves in one call with whatever was queued since.
void WsSession::flush() {
  if (writing_ || state_ == State::kClosed) return;
  if (queue_.empty()) return maybe_finish();
  if (!backlogged_ && queue_.bytes() > http::kBacklogBytes) {
    backlogged_ = true;  // on_drain once it is all written, 1013 if that takes too long
    if (state_ == State::kOpen) arm_slow_deadline();
  }
  constexpr size_t kMaxIov = 1024;  // IOV_MAX on Linux
  iovec iov[kMaxIov];
  const size_t pieces = queue_.gather(iov, kMaxIov);
  ssize_t n;
  if (pieces == 1) {
    // The common case of a fan-out to idle sockets: send() spares the kernel the msghdr copy
    // and the iovec import of sendmsg.
    n = ::send(socket_.native_handle(), iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
  } else {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = pieces;
    n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  server_->stats.ws_write_calls++;
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return finish(ws::close_code::kAbnormal, "write failed");
    n = 0;
  }
  server_->stats.ws_bytes_out += static_cast<uint64_t>(n);
  queue_.consume(static_cast<size_t>(n));
  if (!queue_.empty()) {
    writing_ = true;
    socket_.async_wait(asio::socket_base::wait_write, [self = shared_from_this()](std::error_code ec) {
      self->writing_ = false;
      if (ec) return self->finish(ws::close_code::kAbnormal, "write failed");
      self->flush();
    });
    return;
  }
  if (backlogged_) {
    backlogged_ = false;
    if (state_ == State::kOpen) cancel_close_timer();  // the slow-receiver deadline
    notify_drained();
  }
  maybe_finish();
}

// The queue that had backed up is written out, or dropped by overflow(): tell the handler (a
// fan-out resumes the publishers it paused). Runs from the write path, or from the send that
// overflowed (possibly inside another hook of this socket's handler).
void WsSession::notify_drained() {
  if (state_ != State::kOpen || !handler_) return;
  auto handler = handler_;  // strong for the call, as for every hook
  try {
    handler->on_drain(shared_from_this());
  } catch (const std::exception& e) {
    ops::error("hook_threw", std::string("websocket on_drain threw: ") + e.what(), {{"hook", "on_drain"}});
    send_close(ws::close_code::kInternalError, "internal error");
  }
}

void WsSession::abort(uint16_t code, std::string_view reason) { finish(code, reason); }

void WsSession::finish(uint16_t code, std::string_view reason) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  std::error_code ec;
  cancel_close_timer();
  socket_.shutdown(asio::socket_base::shutdown_both, ec);
  socket_.close(ec);
  queue_.clear();
  if (!notified_) {
    notified_ = true;
    auto handler = handler_;
    try {
      if (handler) handler->on_close(shared_from_this(), code, reason);
    } catch (const std::exception& e) {
      ops::error("hook_threw", std::string("websocket on_close threw: ") + e.what(), {{"hook", "on_close"}});
    }
  }
  // Handlers commonly hold the WebSocket they were given; dropping ours breaks that cycle.
  handler_.reset();
  auto self = std::move(paused_self_);  // a paused session is no longer kept open (freed on return)
}

}  // namespace dog::node
