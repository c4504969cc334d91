// AdminServer::render_metrics: every /metrics family, read from the layers' own counters at
// render time. Names follow Prometheus conventions: counters end in _total, durations are
// _seconds, sizes _bytes; the process_* families are the standard ones exporters use.
#include <array>

#include "node/admin/admin.h"
#include "node/cluster/cluster.h"
#include "node/swim/swim_host.h"

namespace dog::admin {

namespace {

double d(uint64_t v) { return static_cast<double>(v); }

void membership_metrics(TextWriter& w, node::cluster::Cluster& cluster) {
  const auto& swim = cluster.swim_host().swim();
  std::array<uint64_t, 4> by_state{};
  for (const auto& m : swim.members()) ++by_state[static_cast<size_t>(m.state)];
  w.family("dog_members", "gauge", "Members this node knows of by state, itself included");
  for (auto s : {membership::MemberState::kAlive, membership::MemberState::kSuspect, membership::MemberState::kDead,
                 membership::MemberState::kLeft})
    w.sample("dog_members", {{"state", membership::to_string(s)}}, d(by_state[static_cast<size_t>(s)]));
  w.counter("dog_view_changes_total", "Routing views built from membership changes (the table's epoch)",
            d(cluster.table().epoch()));
  const auto& st = swim.stats();
  w.counter("dog_membership_suspicions_total", "Suspicions raised by this node's own probes", d(st.suspicions_raised));
  w.counter("dog_membership_refutations_total", "Times this node refuted a suspicion of itself", d(st.refutations));
  w.counter("dog_membership_deaths_declared_total", "Members declared dead by this node's suspicion timers",
            d(st.deaths_declared));
  w.counter("dog_membership_probes_total", "Probes sent", d(st.probes));
  w.counter("dog_membership_probe_failures_total", "Probes that ended in a suspicion", d(st.probe_failures));
  w.family("dog_membership_dropped_packets_total", "counter", "Inbound membership packets dropped, by reason");
  const std::pair<const char*, uint64_t> drops[] = {{"oversized", st.dropped_oversized}, {"auth", st.dropped_auth},
                                                    {"malformed", st.dropped_malformed}, {"replay", st.dropped_replay},
                                                    {"misdirected", st.dropped_misdirected}};
  for (const auto& [reason, n] : drops) w.sample("dog_membership_dropped_packets_total", {{"reason", reason}}, d(n));
  w.family("dog_membership_sent_bytes_total", "counter", "Sealed membership bytes sent, by transport");
  w.sample("dog_membership_sent_bytes_total", {{"transport", "udp"}}, d(st.datagram_bytes_sent));
  w.sample("dog_membership_sent_bytes_total", {{"transport", "tcp"}}, d(st.stream_bytes_sent));

  auto& rpc = cluster.rpc();
  const auto& r = rpc.stats();
  w.gauge("dog_rpc_connections", "Open RPC connections to peers (duplicates not yet retired included)",
          d(rpc.connection_count()));
  w.counter("dog_rpc_dials_total", "RPC connections dialled", d(r.dials));
  w.counter("dog_rpc_dial_failures_total", "RPC dials that failed", d(r.dial_failures));
  w.counter("dog_rpc_disconnects_total", "RPC connections that ended", d(r.disconnects));
  w.counter("dog_rpc_deadlines_total", "Outgoing RPC calls that hit their deadline", d(r.deadlines));
  w.family("dog_rpc_refused_calls_total", "counter", "Outgoing RPC calls refused before sending, by reason");
  w.sample("dog_rpc_refused_calls_total", {{"reason", "dead"}}, d(r.refused_dead));
  w.sample("dog_rpc_refused_calls_total", {{"reason", "overloaded"}}, d(r.refused_overloaded));
  w.sample("dog_rpc_refused_calls_total", {{"reason", "backoff"}}, d(r.refused_backoff));
  w.sample("dog_rpc_refused_calls_total", {{"reason", "queue"}}, d(r.refused_queue));
}

void front_door_metrics(TextWriter& w, const node::HttpStats& s) {
  w.gauge("dog_http_connections_open", "Open client connections on the front door", d(s.connections_open));
  w.counter("dog_http_connections_accepted_total", "Client connections accepted", d(s.connections_accepted));
  w.counter("dog_http_connections_rejected_total", "Connections closed at once: over the connection cap",
            d(s.connections_rejected));
  w.counter("dog_http_requests_total", "HTTP requests read", d(s.requests));
  w.counter("dog_http_bad_requests_total", "Requests the server itself answered 4xx", d(s.bad_requests));
  w.counter("dog_http_handler_errors_total", "Requests whose handler threw (500)", d(s.handler_errors));
  w.counter("dog_http_timeouts_total", "Connections closed by a header, body, idle or write deadline", d(s.timeouts));
  w.gauge("dog_websockets_open", "Open client WebSockets on this node", d(s.ws_open));
  w.counter("dog_websockets_opened_total", "Client WebSockets opened", d(s.ws_opened));
  w.counter("dog_websocket_messages_received_total", "Messages received from clients", d(s.ws_messages_in));
  w.counter("dog_websocket_received_bytes_total", "Payload bytes received from clients", d(s.ws_bytes_in));
  w.counter("dog_websocket_messages_sent_total", "Messages queued to clients", d(s.ws_messages_out));
  w.counter("dog_websocket_sent_bytes_total", "Bytes written to client WebSockets (frames included)",
            d(s.ws_bytes_out));
  w.counter("dog_websocket_slow_consumer_closes_total", "Clients dropped for not reading (send cap reached)",
            d(s.ws_overflow_drops));
  w.counter("dog_websocket_protocol_errors_total", "WebSockets closed for a protocol violation",
            d(s.ws_protocol_errors));
}

void rpc_families(TextWriter& w, const RpcMetrics& rpc, const char* calls, const char* calls_help, const char* seconds,
                  const char* seconds_help) {
  for (const auto& [method, m] : rpc.methods()) {
    w.family(calls, "counter", calls_help);
    for (const auto& [outcome, n] : m.outcomes) w.sample(calls, {{"method", method}, {"outcome", outcome}}, d(n));
  }
  for (const auto& [method, m] : rpc.methods()) w.histogram(seconds, seconds_help, {{"method", method}}, m.seconds);
}

}  // namespace

std::string AdminServer::render_metrics() const {
  TextWriter w;
  w.gauge("dog_ready", "1 when /readyz answers 200", not_ready_reason().empty() ? 1 : 0);
  w.gauge("dog_draining", "1 once the node has started draining", phase_ == Phase::kDraining ? 1 : 0);
  if (cluster_) membership_metrics(w, *cluster_);

  const auto& rs = runtime_.stats();
  const auto names = runtime_.namespace_names();
  auto by_ns = [&](const char* name, const char* type, const char* help, auto value) {
    w.family(name, type, help);
    for (const auto& n : names) {
      Namespace* ns = runtime_.find_namespace(n);
      const bool group = runtime_.is_group_ns(*ns);
      w.sample(name, {{"namespace", n}, {"kind", group ? "group" : "replica"}}, d(value(*ns, group)));
    }
  };
  auto count_of = [](const std::map<std::string, uint64_t, std::less<>>& m, const std::string& n) {
    auto it = m.find(n);
    return it == m.end() ? uint64_t{0} : it->second;
  };
  by_ns("dog_objects_live", "gauge", "Objects live on this node", [&](Namespace& ns, bool group) {
    return group ? runtime_.group_count(ns) : runtime_.replica_count(ns);
  });
  by_ns("dog_objects_activated_total", "counter", "Objects created on this node",
        [&](Namespace& ns, bool) { return count_of(rs.activated, ns.name()); });
  by_ns("dog_objects_evicted_total", "counter", "Objects evicted from this node once idle",
        [&](Namespace& ns, bool) { return count_of(rs.evicted, ns.name()); });
  w.counter("dog_objects_refused_total", "Creations refused at --max-objects (503)", d(rs.objects_refused));
  w.counter("dog_fanout_deliveries_total", "Socket deliveries made by broadcasts and whispers on this node",
            d(rs.casts_delivered));
  w.counter("dog_casts_sent_total", "Broadcast and whisper calls sent to other nodes", d(rs.casts_sent));
  w.counter("dog_reroutes_total", "'Not here, try X' answers followed", d(rs.reroutes));
  w.counter("dog_relays_closed_total", "Relayed client sockets closed with 1012 (their Replica's node is gone)",
            d(rs.relays_closed_1012));
  w.counter("dog_duplicates_retired_total",
            "Copies of objects retired after a partition healed (the id's owner kept its own; sockets closed with 1012)",
            d(rs.duplicates_retired));
  w.counter("dog_remote_call_errors_total", "Calls to other nodes that failed", d(rs.remote_errors));

  if (front_door_) front_door_metrics(w, front_door_->stats());

  rpc_families(w, *rpc_metrics_, "dog_rpc_server_calls_total", "Calls this node served to peers, by method and outcome",
               "dog_rpc_server_call_duration_seconds", "Time from a peer's call arriving to its answer, by method");
  rpc_families(w, *rpc_client_metrics_, "dog_rpc_client_calls_total",
               "Calls this node made to peers, by method and outcome",
               "dog_rpc_client_call_duration_seconds", "Time from a call to a peer to its answer, by method");
  w.histogram("dog_loop_lag_seconds", "How late the loop's periodic timer fired (time spent busy elsewhere)", {},
              lag_.histogram());

  if (auto v = process_resident_bytes()) w.gauge("process_resident_memory_bytes", "Resident memory size", d(*v));
  if (auto v = process_open_fds()) w.gauge("process_open_fds", "Open file descriptors", d(*v));
  if (auto v = process_max_fds()) w.gauge("process_max_fds", "Maximum number of open file descriptors", d(*v));
  return w.text();
}

}  // namespace dog::admin
