// AdminServer's inspector: /members, /objects, /where (JSON through nlohmann-json).
#include <algorithm>

#include "node/admin/admin.h"
#include "node/cluster/cluster.h"
#include "node/kj_await.h"
#include "node/runtime/wire_util.h"
#include "node/swim/swim_host.h"

namespace dog::admin {

namespace {

Response error(int status, const std::string& message) { return json_response(status, Json{{"error", message}}); }

// The decoded query value `key`, or nullopt if absent; throws HttpError(400) if malformed.
std::optional<std::string> param(const Request& req, std::string_view key) {
  auto raw = req.query_param(key);
  if (!raw) return std::nullopt;
  auto v = percent_decode(*raw);
  if (!v) throw HttpError(400, "the " + std::string(key) + " parameter is not valid percent-encoded text");
  return v;
}

// ?limit=N of /objects: kObjectsLimit when absent; throws HttpError(400) unless 1..kObjectsMaxLimit.
size_t limit_param(const Request& req) {
  auto v = param(req, "limit");
  if (!v) return kObjectsLimit;
  size_t n = 0;
  bool ok = !v->empty() && v->size() <= 6;
  for (char c : *v) ok = ok && c >= '0' && c <= '9';
  if (ok) n = std::stoul(*v);
  if (!ok || n < 1 || n > kObjectsMaxLimit)
    throw HttpError(400, "limit must be a number from 1 to " + std::to_string(kObjectsMaxLimit));
  return n;
}

}  // namespace

std::string AdminServer::node_name() const {
  return runtime_.clustered() ? runtime_.self_node() : std::string("local");
}

Response AdminServer::members() const {
  Json list = Json::array();
  if (cluster_) {
    auto all = cluster_->swim_host().swim().members();
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    for (const auto& m : all)
      list.push_back({{"name", m.name},
                      {"address", m.addr},
                      {"state", membership::to_string(m.state)},
                      {"incarnation", m.incarnation},
                      {"session", m.session},
                      {"load", m.meta.load},
                      {"http", m.meta.http_addr}});
  }
  return json_response(200, {{"self", node_name()}, {"members", list}});
}

Response AdminServer::objects(const Request& req) const {
  std::vector<std::string> names;
  size_t limit = 0;
  try {
    limit = limit_param(req);
    if (auto ns = param(req, "ns")) {
      if (!runtime_.find_namespace(*ns)) return error(404, "unknown namespace " + *ns);
      names.push_back(*ns);
    } else {
      names = runtime_.namespace_names();
    }
  } catch (const HttpError& e) {
    return error(e.status(), e.what());
  }
  // The answer is built at once on the loop: `limit` bounds its size and the time it takes.
  Json list = Json::array();
  bool truncated = false;
  for (const auto& n : names) {
    Namespace& ns = *runtime_.find_namespace(n);
    const bool group = runtime_.is_group_ns(ns);
    for (const auto& o : runtime_.live_objects(ns)) {
      if (list.size() == limit) {
        truncated = true;
        break;
      }
      Json j{{"id", o.id}, {"namespace", n}, {"kind", group ? "group" : "replica"}, {"sockets", o.sockets},
             {"node", node_name()}};
      if (group) {
        j["replicas"] = o.replicas;
      } else {
        j["group"] = o.group;
        j["group_node"] = o.group_node;
      }
      list.push_back(std::move(j));
    }
    if (truncated) break;
  }
  Json out{{"node", node_name()}, {"objects", std::move(list)}};
  if (truncated) out["truncated"] = true;
  return json_response(200, out);
}

Task<Response> AdminServer::where(const Request& req) {
  std::optional<std::string> ns_name, name, hex;
  try {
    ns_name = param(req, "ns");
    name = param(req, "name");
    hex = param(req, "id");
  } catch (const HttpError& e) {
    co_return error(e.status(), e.what());
  }
  if (!ns_name || (!name && !hex)) co_return error(400, "usage: /where?ns=NAMESPACE&name=NAME (or &id=HEX)");
  Namespace* ns = runtime_.find_namespace(*ns_name);
  if (!ns) co_return error(404, "unknown namespace " + *ns_name);
  std::string id;
  try {
    id = name ? ns->id_from_name(*name).hex() : ns->id_from_string(*hex).hex();
  } catch (const BadId& e) {
    co_return error(400, e.what());
  }
  const std::string self = node_name();
  const bool here = runtime_.is_group_ns(*ns) ? runtime_.group_core(*ns, id) != nullptr : runtime_.peer(*ns, id) != nullptr;
  std::string owner = self;
  if (cluster_) {
    auto rid = wire::id_of(id);
    if (rid) owner = cluster_->owner(*rid);
  }
  Json out{{"namespace", *ns_name}, {"id", id}, {"owner", owner}, {"asked", self}};
  if (name) out["name"] = *name;
  // The owner is the id's directory: it holds the object, knows who does, or nobody does.
  std::string host;
  if (owner == self) {
    host = here ? self : runtime_.known_host(id);
  } else {
    const std::string nsn = *ns_name;
    auto p = cluster_->rpc().call(owner, 2 * kj::SECONDS, [nsn, id](rpc::wire::Node::Client client) {
      auto r = client.lookupRequest();
      wire::set_ref(r.initTarget(), nsn, id);
      return r.send().then([](capnp::Response<rpc::wire::Node::LookupResults> res) { return std::string(res.getHost()); });
    });
    try {
      host = co_await node::await_kj(loop_, std::move(p));
    } catch (const node::KjError& e) {
      out["error"] = std::string("the owner did not answer: ") + e.what();
      co_return json_response(502, out);
    }
  }
  if (host.empty() && here) host = self;  // held here, the owner not told yet
  out["host"] = host.empty() ? Json(nullptr) : Json(host);
  out["live"] = !host.empty();
  co_return json_response(200, out);
}

}  // namespace dog::admin
