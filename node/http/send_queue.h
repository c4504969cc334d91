// Internal, sans-IO: one WebSocket's outbound queue.
//
// Frames are queued either as bytes this socket owns (consecutive ones share one growing
// buffer, so a burst of small sends costs no allocation per frame) or as a reference to an
// immutable buffer shared with other sockets (a fan-out encodes once; every recipient's queue
// holds the same buffer, no copy). gather() hands the whole queue to one writev; consume()
// drops what the kernel took, also mid-frame after a partial write.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dog::node {

class SendQueue {
 public:
  using Shared = std::shared_ptr<const std::string>;

  // Appends bytes this socket owns (already framed).
  void push_owned(std::string_view bytes);
  // The owned buffer at the tail, to encode a frame straight into it. Call bytes_added() after.
  std::string& owned_tail();
  void bytes_added(size_t n) { bytes_ += n; }
  // Appends a reference to `frames` (non-null, immutable from now on).
  void push_shared(Shared frames);

  // Fills up to `max` iovecs from the head of the queue; returns how many.
  size_t gather(iovec* iov, size_t max) const;
  // Drops the first `n` queued bytes (n <= bytes()).
  void consume(size_t n);

  // Drops every frame the kernel has not started on (the head chunk stays if it is partly
  // written, so the stream stays well framed); returns the bytes dropped. Used before a 1013.
  size_t drop_unstarted();

  size_t bytes() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }
  void clear();
  // Capacity held by owned buffers (shared ones belong to their fan-out).
  size_t retained_bytes() const;

 private:
  struct Chunk {
    Shared shared;      // set: a shared buffer
    std::string owned;  // otherwise: bytes this socket owns
    std::string_view view() const { return shared ? std::string_view(*shared) : std::string_view(owned); }
  };
  void pop_head();
  // Live chunks are chunks_[head_..]. A vector, not a deque: an empty one allocates nothing,
  // so an idle socket's queue costs only its own few words.
  std::vector<Chunk> chunks_;
  size_t head_ = 0;
  std::string spare_;    // an emptied owned buffer, kept (if small) for the next owned chunk
  size_t head_off_ = 0;  // bytes of chunks_[head_] already written
  size_t bytes_ = 0;
};

}  // namespace dog::node
