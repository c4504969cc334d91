#include "node/http/send_queue.h"

#include "node/http/wire.h"

namespace dog::node {

std::string& SendQueue::owned_tail() {
  // The tail may be appended to even while the head is being written: writes take the data
  // pointer only for the duration of one writev, and keep just an offset across waits.
  if (head_ == chunks_.size() || chunks_.back().shared) {
    chunks_.emplace_back();
    chunks_.back().owned.swap(spare_);  // reuse the last drained buffer: no allocation per burst
  }
  return chunks_.back().owned;
}

void SendQueue::push_owned(std::string_view bytes) {
  if (bytes.empty()) return;
  owned_tail().append(bytes);
  bytes_ += bytes.size();
}

void SendQueue::push_shared(Shared frames) {
  if (!frames || frames->empty()) return;
  bytes_ += frames->size();
  chunks_.push_back(Chunk{std::move(frames), {}});
}

size_t SendQueue::gather(iovec* iov, size_t max) const {
  size_t n = 0;
  for (size_t i = head_; i < chunks_.size() && n < max; ++i) {
    std::string_view v = chunks_[i].view();
    if (i == head_) v.remove_prefix(head_off_);
    if (v.empty()) continue;
    iov[n].iov_base = const_cast<char*>(v.data());
    iov[n].iov_len = v.size();
    ++n;
  }
  return n;
}

void SendQueue::consume(size_t n) {
  bytes_ -= n;
  while (n > 0 && head_ < chunks_.size()) {
    size_t left = chunks_[head_].view().size() - head_off_;
    if (n < left) {
      head_off_ += n;
      return;
    }
    n -= left;
    head_off_ = 0;
    pop_head();
  }
}

void SendQueue::pop_head() {
  Chunk& c = chunks_[head_];
  if (!c.shared) {
    release_if_large(c.owned);  // a small buffer is kept for the next burst
    if (c.owned.capacity() > spare_.capacity()) spare_.swap(c.owned);
  }
  c.shared.reset();
  ++head_;
  if (head_ == chunks_.size()) {
    // Drained: forget the slots (a long queue's array too).
    if (chunks_.capacity() > 64) std::vector<Chunk>().swap(chunks_);
    else chunks_.clear();
    head_ = 0;
  } else if (head_ >= 32 && head_ * 2 >= chunks_.size()) {
    chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(head_));  // compact
    head_ = 0;
  }
}

size_t SendQueue::drop_unstarted() {
  const size_t before = bytes_;
  if (head_off_ == 0) {
    clear();
    return before;
  }
  Chunk head = std::move(chunks_[head_]);
  chunks_.clear();
  head_ = 0;
  bytes_ = head.view().size() - head_off_;
  chunks_.push_back(std::move(head));
  return before - bytes_;
}

void SendQueue::clear() {
  std::vector<Chunk>().swap(chunks_);
  head_ = 0;
  std::string().swap(spare_);
  head_off_ = 0;
  bytes_ = 0;
}

size_t SendQueue::retained_bytes() const {
  size_t n = 0;
  for (size_t i = head_; i < chunks_.size(); ++i) n += chunks_[i].owned.capacity();
  return n + spare_.capacity() + chunks_.capacity() * sizeof(Chunk);
}

}  // namespace dog::node
