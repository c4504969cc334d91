#include "membership/sim/cluster.h"

namespace dog::membership::sim {

class Cluster::Sink : public EventSink {
 public:
  Sink(Cluster& c, uint32_t id) : c_(c), id_(id) {}
  void on_member_event(const Event& e) override {
    if (c_.observer_) c_.observer_(id_, e);
  }
  void on_user_message(std::string_view origin, std::span<const uint8_t> payload) override {
    if (c_.user_observer_) c_.user_observer_(id_, origin, payload);
  }
  void on_self_state(MemberState s, uint64_t incarnation) override {
    if (c_.self_observer_) c_.self_observer_(id_, s, incarnation);
  }

 private:
  Cluster& c_;
  uint32_t id_;
};

namespace {
Keyring::Key key_from_seed(uint64_t seed) {
  Keyring::Key k{};
  Rng rng(seed ^ 0x6b65797269ULL);
  for (size_t i = 0; i < k.size(); i += 8) {
    uint64_t v = rng.next();
    for (size_t j = 0; j < 8; ++j) k[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  return k;
}
}  // namespace

Cluster::Cluster(const ClusterOptions& opts)
    : opts_(opts), net_(opts.seed, opts.config.max_datagram_bytes), keyring_(key_from_seed(opts.seed)) {
  net_.set_default_link(opts.link);
  Rng seeds(opts.seed * 0x9e3779b97f4a7c15ULL + 7);
  for (uint32_t i = 0; i < opts.nodes; ++i) {
    const uint32_t id = net_.add_endpoint(name_of(i));
    sinks_.push_back(std::make_unique<Sink>(*this, i));
    Identity ident{name_of(i), name_of(i), Meta{}};
    ident.meta.zone = "z" + std::to_string(i % 3);
    nodes_.push_back(std::make_unique<Swim>(opts.config, ident, keyring_, net_, net_.timer(id),
                                            net_.transport(id), seeds.next(), sinks_.back().get()));
    net_.attach(id, nodes_.back().get());
  }
  if (opts.preinstalled) {
    std::vector<MemberInfo> all;
    for (uint32_t i = 0; i < opts.nodes; ++i) all.push_back(*nodes_[i]->member(name_of(i)));
    for (auto& n : nodes_) n->TEST_install(all);
  }
}

Cluster::~Cluster() = default;

void Cluster::start_all() {
  for (auto& n : nodes_) n->start();
}

void Cluster::join_all() {
  std::vector<std::string> seed{name_of(0)};
  for (uint32_t i = 1; i < nodes_.size(); ++i) nodes_[i]->join(seed);
}

size_t Cluster::count_seeing(size_t n) const {
  size_t c = 0;
  for (uint32_t i = 0; i < nodes_.size(); ++i)
    if (!net_.crashed(i) && nodes_[i]->num_live() == n) ++c;
  return c;
}

}  // namespace dog::membership::sim
