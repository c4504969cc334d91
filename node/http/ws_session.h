// Internal: the I/O side of one accepted WebSocket. Framing lives in ws_codec (sans-IO); this
// class moves bytes: a read loop feeding the decoder, and a batched write path.
//
// * Reads wait for readiness and then read into the server's one buffer per loop, so an idle
//   socket holds no read buffer (the decoder keeps only an incomplete message).
// * Everything queued during a loop turn (owned frames and shared fan-out buffers, see
//   SendQueue) leaves in one sendmsg; after a partial write the rest waits for writability and
//   again goes in one call. HttpStats::ws_write_calls counts the calls.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <memory>
#include <string>

#include "dog/websocket.h"
#include "node/http/send_queue.h"
#include "node/http/server_state.h"
#include "node/http/ws_codec.h"

namespace dog::node {

class WsSession final : public http::WebSocket,
                        public http::ws::FrameSink,
                        public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(std::shared_ptr<HttpServer::State> server, asio::ip::tcp::socket socket,
            std::shared_ptr<http::WebSocketHandler> handler, uint64_t id);
  ~WsSession() override;

  // Takes over the socket. `leftover` is whatever followed the upgrade request in the buffer.
  void start(std::string_view leftover);

  // http::WebSocket
  bool send(std::string_view data, bool text) override;
  bool send_encoded(std::string_view frames) override;
  bool send_shared(const http::SharedFrames& frames) override;
  void close(uint16_t code, std::string_view reason) override;
  bool is_open() const override { return state_ == State::kOpen; }
  uint64_t id() const override { return id_; }
  size_t buffered_bytes() const override { return queue_.bytes(); }
  // While reading is paused the session owns itself (no read may be pending to keep it alive,
  // and a handler may hold it only weakly); resume_reading() or the close gives that up.
  void pause_reading() override;
  bool ended_by_error() const override { return !peer_closed_ || protocol_error_; }
  void resume_reading() override;

  // Server shutdown: close with 1001 and let the handshake finish, or abort now.
  void going_away();
  void abort(uint16_t code, std::string_view reason);

  // Capacity of this socket's buffers, for HttpServer::buffer_bytes().
  size_t retained_bytes() const { return queue_.retained_bytes() + decoder_.retained_bytes(); }

  // Keepalive for every WebSocket of a server from one timer (HttpConfig::ws_ping_interval),
  // instead of a timer and a pending wait per socket: each interval, a socket that sent nothing
  // since the last one is pinged, and one that stayed silent after its ping is aborted (1006).
  // A socket is so dropped between two and three intervals after its last inbound byte. Armed
  // by the first session; it stops itself once the server has no sessions.
  static void arm_keepalive_sweep(const std::shared_ptr<HttpServer::State>& server);

 private:
  enum class State { kOpen, kClosing, kClosed };

  // ws::FrameSink
  void on_message(std::string_view payload, bool text) override;
  void on_ping(std::string_view payload) override;
  void on_pong(std::string_view payload) override;
  void on_close(uint16_t code, std::string_view reason) override;
  void on_protocol_error(uint16_t code, std::string_view why) override;

  bool enqueue(std::string_view bytes);
  bool fits(size_t extra) const;
  bool overflow();
  void schedule_flush();
  static void flush_all(const std::shared_ptr<HttpServer::State>& server);
  void flush();
  void read();
  void read_ready();
  void send_close(uint16_t code, std::string_view reason);
  void maybe_finish();
  void notify_drained();
  // A flush that starts with more than http::kBacklogBytes queued sets this; when that queue is
  // fully written the handler's on_drain runs. Past ws_slow_timeout in between: overflow().
  bool backlogged_ = false;
  void arm_slow_deadline();
  // What only a closing or backlogged socket needs, made on first use so that an idle socket
  // holds none of it (~150 bytes): the timer of the close handshake and of the slow-receiver
  // deadline, and the close reason.
  struct Closing {
    explicit Closing(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    std::string reason;
  };
  Closing& closing();
  asio::steady_timer& close_timer() { return closing().timer; }
  void cancel_close_timer() {
    if (closing_) closing_->timer.cancel();
  }
  std::string_view close_reason() const { return closing_ ? std::string_view(closing_->reason) : std::string_view(); }
  void set_close_reason(std::string_view why) { closing().reason.assign(why); }
  static constexpr uint16_t kTryAgainLater = 1013;
  void finish(uint16_t code, std::string_view reason);

  std::shared_ptr<HttpServer::State> server_;
  asio::ip::tcp::socket socket_;
  std::shared_ptr<http::WebSocketHandler> handler_;
  uint64_t id_;
  http::ws::Decoder decoder_;
  State state_ = State::kOpen;
  bool close_sent_ = false;
  bool peer_closed_ = false;
  bool protocol_error_ = false;  // we closed because the peer broke RFC 6455
  bool flush_scheduled_ = false;
  bool writing_ = false;
  bool reading_ = false;
  bool paused_ = false;
  std::shared_ptr<WsSession> paused_self_;  // set while paused and open: see pause_reading()
  bool notified_ = false;
  uint16_t close_code_ = http::ws::close_code::kAbnormal;
  SendQueue queue_;  // everything not yet accepted by the kernel
  std::unique_ptr<Closing> closing_;
  // Keepalive: any inbound bytes count as life; the server's sweep calls this once per interval.
  // True: the peer never answered the last ping (the sweep then aborts it). Never runs handler
  // code, so the sweep can walk the session set while ticking.
  bool keepalive_tick();
  bool heard_ = true;
  bool ping_outstanding_ = false;
};

}  // namespace dog::node
