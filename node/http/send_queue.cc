#include "node/http/send_queue.h"

#include "node/http/wire.h"

namespace dog::node {

std::string& SendQueue::owned_tail() {
  // The tail may be appended to even while the head is being written: writes take the data
  // pointer only for the duration of one writev, and keep just an offset across waits.
  if (chunks_.empty() || chunks_.back().shared) {
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
  for (size_t i = 0; i < chunks_.size() && n < max; ++i) {
    std::string_view v = chunks_[i].view();
    if (i == 0) v.remove_prefix(head_off_);
    if (v.empty()) continue;
    iov[n].iov_base = const_cast<char*>(v.data());
    iov[n].iov_len = v.size();
    ++n;
  }
  return n;
}

void SendQueue::consume(size_t n) {
  bytes_ -= n;
  while (n > 0 && !chunks_.empty()) {
    size_t left = chunks_.front().view().size() - head_off_;
    if (n < left) {
      head_off_ += n;
      return;
    }
    n -= left;
    head_off_ = 0;
    if (!chunks_.front().shared) {
      release_if_large(chunks_.front().owned);  // a small buffer is kept for the next burst
      if (chunks_.front().owned.capacity() > spare_.capacity()) spare_.swap(chunks_.front().owned);
    }
    chunks_.pop_front();
  }
}

void SendQueue::clear() {
  chunks_.clear();
  std::string().swap(spare_);
  head_off_ = 0;
  bytes_ = 0;
}

size_t SendQueue::retained_bytes() const {
  size_t n = 0;
  for (const auto& c : chunks_) n += c.owned.capacity();
  return n + spare_.capacity();
}

}  // namespace dog::node
