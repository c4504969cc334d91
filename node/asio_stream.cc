#include "node/asio_stream.h"

#include <poll.h>

#include <asio/connect.hpp>
#include <kj/debug.h>
#include <memory>
#include <span>

namespace dog::node {
namespace {

kj::Exception disconnected(const std::error_code& ec) {
  return KJ_EXCEPTION(DISCONNECTED, "socket error", ec.message().c_str());
}

// Bridges an Asio completion into a KJ promise. `alive` lets the handler ignore a completion
// that arrives after the stream (and so the fulfiller's owner) is gone.
kj::Promise<void> wait_ready(asio::ip::tcp::socket& socket, asio::socket_base::wait_type type,
                             const std::shared_ptr<bool>& alive) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  socket.async_wait(type, [f = kj::mv(paf.fulfiller), alive](std::error_code ec) mutable {
    if (!*alive) return;
    if (ec == asio::error::operation_aborted) return;  // stream closing; promise is dropped
    if (ec) f->reject(disconnected(ec));
    else f->fulfill();
  });
  return kj::mv(paf.promise);
}

class AsioStream final : public kj::AsyncIoStream {
 public:
  explicit AsioStream(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {
    socket_.non_blocking(true);
    socket_.set_option(asio::ip::tcp::no_delay(true));
  }

  ~AsioStream() noexcept(false) {
    *alive_ = false;
    std::error_code ec;
    socket_.close(ec);
  }

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    return read_loop(static_cast<kj::byte*>(buffer), minBytes, maxBytes, 0);
  }

  kj::Promise<void> write(const void* buffer, size_t size) override {
    // `piece` lives on this frame only: write_pieces never keeps the piece array past its
    // synchronous part.
    kj::ArrayPtr<const kj::byte> piece(static_cast<const kj::byte*>(buffer), size);
    return write_pieces(kj::arrayPtr(&piece, 1));
  }

  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return write_pieces(pieces);
  }

  kj::Promise<void> whenWriteDisconnected() override {
    if (disconnect_fork_.get() == nullptr) {
      disconnect_fork_ = kj::heap<kj::ForkedPromise<void>>(watch_disconnect().fork());
    }
    return disconnect_fork_->addBranch();
  }

  void shutdownWrite() override {
    std::error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_send, ec);
  }

  void abortRead() override {
    std::error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_receive, ec);
  }

  void getsockopt(int level, int option, void* value, kj::uint* length) override {
    socklen_t len = *length;
    KJ_SYSCALL(::getsockopt(socket_.native_handle(), level, option, value, &len));
    *length = len;
  }
  void setsockopt(int level, int option, const void* value, kj::uint length) override {
    KJ_SYSCALL(::setsockopt(socket_.native_handle(), level, option, value, length));
  }
  void getsockname(struct sockaddr* addr, kj::uint* length) override {
    socklen_t len = *length;
    KJ_SYSCALL(::getsockname(socket_.native_handle(), addr, &len));
    *length = len;
  }
  void getpeername(struct sockaddr* addr, kj::uint* length) override {
    socklen_t len = *length;
    KJ_SYSCALL(::getpeername(socket_.native_handle(), addr, &len));
    *length = len;
  }

 private:
  kj::Promise<size_t> read_loop(kj::byte* buf, size_t min_bytes, size_t max_bytes,
                                size_t done) {
    while (done < min_bytes) {
      std::error_code ec;
      size_t n = socket_.read_some(asio::buffer(buf + done, max_bytes - done), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        return wait_ready(socket_, asio::socket_base::wait_read, alive_)
            .then([this, buf, min_bytes, max_bytes, done]() {
              return read_loop(buf, min_bytes, max_bytes, done);
            });
      }
      if (ec == asio::error::eof) return done;  // short count signals EOF
      if (ec) return disconnected(ec);
      done += n;
    }
    // Opportunistically take whatever else is already buffered, up to max_bytes.
    return done;
  }

  // Writes every byte of `pieces`. KJ keeps the bytes alive until the promise resolves, but not
  // necessarily the piece array (the single-buffer write() builds it on its own stack frame), so
  // whenever this must wait for the socket it continues from a heap copy of the piece list that
  // is attached to the promise. The copy is made only on the slow path (EAGAIN or a partial
  // write); an idle socket takes the whole list in one writev with no allocation.
  kj::Promise<void> write_pieces(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) {
    constexpr size_t kMaxIov = 64;
    while (pieces.size() > 0) {
      asio::const_buffer bufs[kMaxIov];
      size_t n = 0;
      for (; n < pieces.size() && n < kMaxIov; ++n) bufs[n] = asio::buffer(pieces[n].begin(), pieces[n].size());
      std::error_code ec;
      size_t written = socket_.write_some(std::span<const asio::const_buffer>(bufs, n), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) written = 0;
      else if (ec) return disconnected(ec);
      // Skip fully written pieces.
      while (pieces.size() > 0 && written >= pieces[0].size()) {
        written -= pieces[0].size();
        pieces = pieces.slice(1, pieces.size());
      }
      if (pieces.size() == 0) break;
      if (written > 0 || ec) {
        // Short write or full socket: keep what is left in memory we own, wait, continue.
        auto rest = kj::heapArray<kj::ArrayPtr<const kj::byte>>(pieces.size());
        for (size_t i = 0; i < pieces.size(); ++i) rest[i] = pieces[i];
        rest[0] = rest[0].slice(written, rest[0].size());
        auto view = rest.asPtr();
        return wait_ready(socket_, asio::socket_base::wait_write, alive_)
            .then([this, view]() { return write_pieces(view); })
            .attach(kj::mv(rest));
      }
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> watch_disconnect() {
    struct pollfd pfd = {socket_.native_handle(), 0, 0};
    int r = ::poll(&pfd, 1, 0);
    if (r > 0 && (pfd.revents & (POLLHUP | POLLERR))) return kj::READY_NOW;
    // Asio's epoll reactor completes wait_error on EPOLLERR|EPOLLHUP (and EPOLLPRI).
    return wait_ready(socket_, asio::socket_base::wait_error, alive_)
        .then([this]() { return watch_disconnect(); }, [](kj::Exception&&) {});
  }

  asio::ip::tcp::socket socket_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  kj::Own<kj::ForkedPromise<void>> disconnect_fork_;
};

}  // namespace

kj::Own<kj::AsyncIoStream> wrap_socket(asio::ip::tcp::socket socket) {
  return kj::heap<AsioStream>(std::move(socket));
}

kj::Promise<kj::Own<kj::AsyncIoStream>> connect_stream(asio::io_context& io,
                                                       asio::ip::tcp::endpoint endpoint) {
  auto socket = std::make_shared<asio::ip::tcp::socket>(io);
  auto alive = std::make_shared<bool>(true);
  auto paf = kj::newPromiseAndFulfiller<kj::Own<kj::AsyncIoStream>>();
  socket->async_connect(endpoint, [socket, f = kj::mv(paf.fulfiller)](std::error_code ec) mutable {
    if (!f->isWaiting()) return;
    if (ec) f->reject(disconnected(ec));
    else f->fulfill(wrap_socket(std::move(*socket)));
  });
  // If the caller drops the promise, close the socket so the pending connect completes.
  return paf.promise.attach(kj::defer([socket]() {
    std::error_code ec;
    if (socket->is_open()) socket->close(ec);
  }));
}

}  // namespace dog::node
