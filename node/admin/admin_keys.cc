// AdminServer's cluster-key endpoints: GET /keys and POST /keys/install|use|remove (the body is
// one base64 key, as `APP keygen` prints it). Keys never leave the node: answers name them by
// fingerprint (the first 8 bytes of their BLAKE2b hash, in hex).
#include <sodium.h>

#include "node/admin/admin.h"
#include "node/cluster/cluster.h"

namespace dog::admin {

std::string key_fingerprint(const std::array<uint8_t, 32>& key) {
  uint8_t h[crypto_generichash_BYTES];
  crypto_generichash(h, sizeof h, key.data(), key.size(), nullptr, 0);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < 8; ++i) {
    out += kHex[h[i] >> 4];
    out += kHex[h[i] & 15];
  }
  return out;
}

Json AdminServer::key_list() const {
  Json keys = Json::array();
  bool first = true;
  for (const auto& k : cluster_->keys()) {
    keys.push_back({{"fingerprint", key_fingerprint(k)}, {"primary", first}});
    first = false;
  }
  return keys;
}

Response AdminServer::keys(const Request& req) {
  if (!cluster_) return json_response(409, {{"error", "this node is not a cluster member (no --bind): it has no cluster key"}});
  const std::string_view path = req.path();
  if (path == "/keys") return json_response(200, {{"node", node_name()}, {"keys", key_list()}});
  using Op = node::cluster::Cluster::KeyOp;
  const Op op = path == "/keys/install" ? Op::kInstall : path == "/keys/use" ? Op::kUse : Op::kRemove;
  std::vector<std::array<uint8_t, 32>> parsed;
  try {
    parsed = node::cluster::parse_key_text(req.body, "the request body");
  } catch (const node::cluster::ClusterError& e) {
    return json_response(400, {{"error", e.what()}});
  }
  if (parsed.size() != 1) return json_response(400, {{"error", "the body must hold exactly one base64 key"}});
  auto change = cluster_->change_key(op, parsed[0]);
  sodium_memzero(parsed[0].data(), parsed[0].size());
  using Refusal = node::cluster::Cluster::KeyChange::Refusal;
  if (change.refusal == Refusal::kNotInstalled)
    return json_response(409, {{"node", node_name()}, {"error", "the key is not installed on this node: install it first"}});
  if (change.refusal == Refusal::kIsPrimary)
    return json_response(409, {{"node", node_name()}, {"error", "the key is this node's primary: use another key first"}});
  Json out{{"node", node_name()}, {"keys", key_list()}, {"persisted", change.file_error.empty()}};
  if (!change.file_error.empty()) out["file_error"] = change.file_error;
  return json_response(200, out);
}

}  // namespace dog::admin
