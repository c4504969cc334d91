#!/usr/bin/env bash
# Opt-in browser test of dog-chat's page: three headless Chromium users chat. Not part of the
# default suite (it installs Chromium, ~140 MB, and puppeteer-core).
#
#   tests/browser/run.sh            a 3-node cluster from scripts/start.sh --no-build (real nginx
#                                   in front, build/bin/dog-chat): alice on node1's own port, bob
#                                   on node2's, carol through nginx; they chat across nodes
#   tests/browser/run.sh --single [BIN_DIR]   one dog-chat, all three users on it
#
# DOG_SCREENSHOT=/tmp/x.png keeps a screenshot of carol's page.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
mode=cluster
if [[ ${1:-} == --single ]]; then mode=single; shift; fi
bin="${1:-../../build/bin}"
command -v chromium >/dev/null || apt-get install -y -qq --no-install-recommends chromium >/dev/null
work=$(mktemp -d)
pid=""
cleanup() {
  # start.sh drains its nodes and stops nginx on SIGTERM; wait for it (bounded), then SIGKILL.
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$work" && npm init -y >/dev/null && npm install --silent puppeteer-core@24 >/dev/null)
cp chat_browser.js "$work/"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ $mode == single ]]; then
  port=$(free_port)
  "$bin/dog-chat" --http "127.0.0.1:$port" --limit 2 2>/dev/null &
  pid=$!
  for _ in $(seq 1 50); do port_up "$port" && break; sleep 0.1; done
  timeout 90 node "$work/chat_browser.js" "http://127.0.0.1:$port"
  exit
fi

# Cluster: start.sh serves nginx on $base, node i on $base+i, cluster ports from $cbase.
# --limit 1: every user gets its own Replica, placed on the less loaded of two nodes.
for attempt in 1 2 3 4 5; do
  base=$((20000 + RANDOM % 20000)) cbase=$((40000 + RANDOM % 20000))
  "$here/../../scripts/start.sh" --no-build --port "$base" --cluster-port "$cbase" -- --limit 1 \
    >"$work/start.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    grep -q "dog-chat cluster: open" "$work/start.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  grep -q "dog-chat cluster: open" "$work/start.log" && break
  grep -q "is in use" "$work/start.log" || { cat "$work/start.log" >&2; exit 1; }
  wait "$pid" 2>/dev/null || true
  pid=""
done
[[ -n $pid ]] || { echo "browser: no free ports for start.sh" >&2; exit 1; }
grep -E "^  (nginx|node)" "$work/start.log"
timeout 120 node "$work/chat_browser.js" "http://127.0.0.1:$((base + 1))" "http://127.0.0.1:$((base + 2))" \
  "http://127.0.0.1:$base"
