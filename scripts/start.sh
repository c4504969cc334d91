#!/usr/bin/env bash
# The main job: installs what is missing, builds, and serves the example chat app as a local
# cluster: N dog-chat nodes (default 3) joined on 127.0.0.1 cluster ports with a fresh key, and
# a real nginx in front of their HTTP ports (deploy/nginx/). Ctrl-C stops everything.
#
#   scripts/start.sh [--port 8080] [--nodes 3] [--cluster-port 7946] [--admin-port 9090]
#                    [--preset local|lan|wan] [--no-build] [-- dog-chat flags, e.g. --limit 3]
#
# --no-build skips the package check and the build and runs build/bin/dog-chat (or
# $DOG_CHAT_BIN) as it is.
# Ports: nginx on --port; node i (1..N) serves HTTP on port+i, the cluster on cluster-port+i-1
# and its admin endpoint (--admin: metrics, health, dogctl) on 127.0.0.1:admin-port+i-1, so
# `build/bin/dogctl members` (default 127.0.0.1:9090) asks node1.
# Everything (key, nginx config, node logs) lives in one temporary folder, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

port=8080 nodes=3 preset=local cluster_base=7945 admin_base=9089 build=1
extra=()
while (($#)); do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --cluster-port) cluster_base=$(($2 - 1)); shift 2 ;;
    --admin-port) admin_base=$(($2 - 1)); shift 2 ;;
    --no-build) build=0; shift ;;
    --) shift; extra+=("$@"); break ;;
    *) extra+=("$1"); shift ;;
  esac
done

if ((build)); then
  scripts/setup.sh
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j "$(nproc)" --target dog-chat dogctl
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
chat="${DOG_CHAT_BIN:-$root/build/bin/dog-chat}"  # tests point it at their build

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port" $(seq $((port + 1)) $((port + nodes))) $(seq $((cluster_base + 1)) $((cluster_base + nodes))) \
  $(seq $((admin_base + 1)) $((admin_base + nodes))); do
  if port_busy "$p"; then echo "start: port $p is in use (another start.sh?); try --port" >&2; exit 1; fi
done

tmp=$(mktemp -d -t dog-cluster.XXXXXX)
pids=() nginx_pid="" tail_pid=""
cleanup() {
  trap - INT TERM EXIT
  echo >&2
  echo "start: stopping nginx and ${#pids[@]} nodes" >&2
  [[ -n $tail_pid ]] && kill "$tail_pid" 2>/dev/null || true
  [[ -n $nginx_pid ]] && kill -QUIT "$nginx_pid" 2>/dev/null || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Nodes drain (WebSockets get 1001) and leave the cluster; give them 10 s, then SIGKILL.
  for _ in $(seq 100); do
    alive=0
    for pid in "${pids[@]}" $nginx_pid; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}" $nginx_pid; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
stopping=0
trap 'stopping=1; exit 130' INT
trap 'stopping=1; exit 143' TERM

# Waits until `file` has a line matching `pattern` (a node's start-up line), or its process ends.
wait_for_line() {
  local file=$1 pattern=$2 pid=$3
  for _ in $(seq 600); do
    grep -q "$pattern" "$file" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "start: $(basename "$file" .log) exited:" >&2
      sed 's/^/  /' "$file" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "start: $(basename "$file" .log) did not start within 30 s; its log:" >&2
  sed 's/^/  /' "$file" >&2
  exit 1
}

(umask 077 && "$chat" keygen >"$tmp/cluster.key")

seed="127.0.0.1:$((cluster_base + 1))"
start_node() {
  local i=$1
  local args=(--http "127.0.0.1:$((port + i))" --bind "127.0.0.1:$((cluster_base + i))"
    --name "node$i" --preset "$preset" --cluster-key-file "$tmp/cluster.key"
    --admin "127.0.0.1:$((admin_base + i))")
  ((i > 1)) && args+=(--join "$seed")
  "$chat" "${args[@]}" "${extra[@]}" >"$tmp/node$i.log" 2>&1 &
  pids+=($!)
}
start_node 1
wait_for_line "$tmp/node1.log" "dog: serving on" "${pids[0]}"
for i in $(seq 2 "$nodes"); do start_node "$i"; done
for i in $(seq 2 "$nodes"); do wait_for_line "$tmp/node$i.log" "dog: serving on" "${pids[$((i - 1))]}"; done
# Announce the URL only once every node sees all of them (views converged).
for i in $(seq "$nodes"); do
  wait_for_line "$tmp/node$i.log" "dog: cluster members $nodes\$" "${pids[$((i - 1))]}"
done

servers=""
for i in $(seq "$nodes"); do
  servers+="server 127.0.0.1:$((port + i)) max_fails=1 fail_timeout=5s; "
done
mkdir -p "$tmp/nginx/tmp"
cp deploy/nginx/nginx-local.conf "$tmp/nginx/nginx.conf"
conf=$(<deploy/nginx/dog.conf.template)
conf=${conf//'${DOG_LISTEN}'/"127.0.0.1:$port"}
conf=${conf//'${DOG_UPSTREAM_SERVERS}'/"$servers"}
printf '%s\n' "$conf" >"$tmp/nginx/dog.conf"
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e stderr >"$tmp/nginx.log" 2>&1 &
nginx_pid=$!
for _ in $(seq 200); do port_busy "$port" && break; kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.05; done
if ! port_busy "$port"; then
  echo "start: nginx did not start:" >&2
  sed 's/^/  /' "$tmp/nginx.log" >&2
  exit 1
fi

echo >&2
echo "dog-chat cluster: open http://127.0.0.1:$port in two browsers (Ctrl-C stops everything)" >&2
echo "  nginx     http://127.0.0.1:$port  (round robin, no sticky sessions)  pid $nginx_pid" >&2
for i in $(seq "$nodes"); do
  echo "  node$i     http://127.0.0.1:$((port + i))  cluster 127.0.0.1:$((cluster_base + i))  admin http://127.0.0.1:$((admin_base + i))  pid ${pids[$((i - 1))]}" >&2
done
echo "  dogctl    build/bin/dogctl --admin 127.0.0.1:$((admin_base + 1)) members  (where NS NAME, objects, drain)" >&2
echo "  logs      $tmp/node*.log, $tmp/nginx.log" >&2
echo >&2

# Follow the node logs until Ctrl-C or until any process ends.
trap 'stopping=1' INT TERM  # ends the wait below; the check after it exits
tail -n +1 -F "$tmp"/node*.log "$tmp/nginx.log" 2>/dev/null &
tail_pid=$!
wait -n "${pids[@]}" "$nginx_pid" || true
# Ctrl-C reaches the nodes too (same process group): they may end just before we hear it.
sleep 0.2
((stopping)) && exit 0
echo "start: a process ended unexpectedly; stopping the rest" >&2
exit 1
