#include "alternatives.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <stdexcept>

#include "routing/hash.h"

namespace dog::bench {
namespace {

using routing::detail::mix64;
using routing::detail::node_hash;
using routing::detail::race_score;
using routing::detail::token_hash;

std::vector<uint64_t> hashes_of(const std::vector<Node>& nodes) {
  std::vector<uint64_t> h;
  for (const Node& n : nodes) h.push_back(node_hash(n.name));
  return h;
}

// Member indices sorted by node hash: the canonical order for order-sensitive algorithms.
std::vector<uint32_t> by_hash(const std::vector<uint64_t>& h) {
  std::vector<uint32_t> order(h.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return h[a] < h[b]; });
  return order;
}

class UniformFloor final : public Placer {
 public:
  std::string name() const override { return "key mod N (noise floor, not consistent)"; }
  void build(const std::vector<Node>& nodes) override { n_ = nodes.size(); }
  uint32_t lookup(uint64_t key) const override { return static_cast<uint32_t>(key % n_); }

 private:
  uint64_t n_ = 1;
};

class Rendezvous final : public Placer {
 public:
  std::string name() const override { return "rendezvous (HRW, O(N))"; }
  void build(const std::vector<Node>& nodes) override { h_ = hashes_of(nodes); }
  uint32_t lookup(uint64_t key) const override {
    uint32_t best = 0;
    uint64_t best_score = 0;
    for (uint32_t i = 0; i < h_.size(); ++i) {
      const uint64_t s = race_score(key, h_[i]);
      if (s >= best_score) best_score = s, best = i;
    }
    return best;
  }

 private:
  std::vector<uint64_t> h_;
};

class Ring final : public Placer {
 public:
  explicit Ring(int vnodes) : vnodes_(vnodes) {}
  std::string name() const override { return "ring, " + std::to_string(vnodes_) + " vnodes"; }
  void build(const std::vector<Node>& nodes) override {
    std::vector<std::pair<uint64_t, uint32_t>> tokens;
    for (uint32_t i = 0; i < nodes.size(); ++i) {
      const uint64_t h = node_hash(nodes[i].name);
      const int count = std::max(1, int(nodes[i].weight * vnodes_ + 0.5));
      for (int j = 0; j < count; ++j) tokens.emplace_back(token_hash(h, j), i);
    }
    std::sort(tokens.begin(), tokens.end());
    pos_.clear();
    owner_.clear();
    for (const auto& [p, i] : tokens) pos_.push_back(p), owner_.push_back(i);
  }
  uint32_t lookup(uint64_t key) const override {
    auto it = std::lower_bound(pos_.begin(), pos_.end(), key);
    return owner_[it == pos_.end() ? 0 : it - pos_.begin()];
  }

 private:
  int vnodes_;
  std::vector<uint64_t> pos_;
  std::vector<uint32_t> owner_;
};

class Jump final : public Placer {
 public:
  std::string name() const override { return "jump hash (members in hash order)"; }
  void build(const std::vector<Node>& nodes) override { order_ = by_hash(hashes_of(nodes)); }
  uint32_t lookup(uint64_t key) const override {
    int64_t b = -1, j = 0;
    const int64_t n = static_cast<int64_t>(order_.size());
    while (j < n) {
      b = j;
      key = key * 2862933555777941757ULL + 1;
      j = static_cast<int64_t>(double(b + 1) * (double(1LL << 31) / double((key >> 33) + 1)));
    }
    return order_[b];
  }

 private:
  std::vector<uint32_t> order_;
};

class Maglev final : public Placer {
 public:
  explicit Maglev(int m) : m_(m) {}
  std::string name() const override { return "maglev, M=" + std::to_string(m_); }
  void build(const std::vector<Node>& nodes) override {
    const std::vector<uint64_t> h = hashes_of(nodes);
    const std::vector<uint32_t> order = by_hash(h);
    const size_t n = order.size();
    std::vector<uint64_t> offset(n), skip(n), next(n, 0);
    for (size_t k = 0; k < n; ++k) {
      offset[k] = mix64(h[order[k]] ^ 1) % m_;
      skip[k] = mix64(h[order[k]] ^ 2) % (m_ - 1) + 1;
    }
    entry_.assign(m_, UINT32_MAX);
    size_t filled = 0;
    while (true) {
      for (size_t k = 0; k < n; ++k) {
        uint64_t c = (offset[k] + next[k] * skip[k]) % m_;
        while (entry_[c] != UINT32_MAX) c = (offset[k] + ++next[k] * skip[k]) % m_;
        entry_[c] = order[k];
        ++next[k];
        if (++filled == size_t(m_)) return;
      }
    }
  }
  uint32_t lookup(uint64_t key) const override { return entry_[mix64(key) % m_]; }

 private:
  int m_;
  std::vector<uint32_t> entry_;
};

class HrwSlots final : public Placer {
 public:
  explicit HrwSlots(int bits) : bits_(bits) {}
  std::string name() const override {
    return "slot table 2^" + std::to_string(bits_) + " filled by HRW";
  }
  void build(const std::vector<Node>& nodes) override {
    const std::vector<uint64_t> h = hashes_of(nodes);
    slot_.assign(size_t{1} << bits_, 0);
    for (size_t s = 0; s < slot_.size(); ++s) {
      const uint64_t key = mix64(s + 0x1234567);
      uint64_t best_score = 0;
      for (uint32_t i = 0; i < h.size(); ++i) {
        const uint64_t sc = race_score(key, h[i]);
        if (sc >= best_score) best_score = sc, slot_[s] = i;
      }
    }
  }
  uint32_t lookup(uint64_t key) const override { return slot_[key >> (64 - bits_)]; }

 private:
  int bits_;
  std::vector<uint32_t> slot_;
};

class Bucketed final : public Placer {
 public:
  explicit Bucketed(const routing::TableParams& p) : params_(p) {}
  std::string name() const override {
    return "slot-bucketed rendezvous, 2^" + std::to_string(params_.slot_bits) + " slots, " +
           std::to_string(params_.tokens_per_weight) + " tokens/weight";
  }
  void build(const std::vector<Node>& nodes) override {
    routing::View view;
    for (const Node& n : nodes) view.members.push_back({n.name, n.weight});
    routing::BuildResult built = routing::RoutingTable::build(view, params_);
    if (!built.table) throw std::runtime_error(built.message);
    table_.emplace(std::move(*built.table));
    to_input_ = routing::canonical_order(view);
  }
  uint32_t lookup(uint64_t key) const override {
    return to_input_[table_->owner_of_key(key).member];
  }

 private:
  routing::TableParams params_;
  std::optional<routing::RoutingTable> table_;
  std::vector<uint32_t> to_input_;
};

}  // namespace

std::unique_ptr<Placer> make_uniform_floor() {
  return std::make_unique<UniformFloor>();
}
std::unique_ptr<Placer> make_rendezvous() {
  return std::make_unique<Rendezvous>();
}
std::unique_ptr<Placer> make_ring(int vnodes) {
  return std::make_unique<Ring>(vnodes);
}
std::unique_ptr<Placer> make_jump() {
  return std::make_unique<Jump>();
}
std::unique_ptr<Placer> make_maglev(int table_size) {
  return std::make_unique<Maglev>(table_size);
}
std::unique_ptr<Placer> make_hrw_slots(int bits) {
  return std::make_unique<HrwSlots>(bits);
}
std::unique_ptr<Placer> make_bucketed(const routing::TableParams& params) {
  return std::make_unique<Bucketed>(params);
}

}  // namespace dog::bench
