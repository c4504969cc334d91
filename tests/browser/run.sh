#!/usr/bin/env bash
# Opt-in browser test of dog-chat's page: three headless Chromium users chat through a real
# dog-chat. Not part of the default suite (it installs Chromium, ~140 MB, and puppeteer-core).
#   tests/browser/run.sh [BIN_DIR]        DOG_SCREENSHOT=/tmp/x.png to keep a screenshot
set -euo pipefail
cd "$(dirname "$0")"
bin="${1:-../../build/bin}"
command -v chromium >/dev/null || apt-get install -y -qq --no-install-recommends chromium >/dev/null
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --silent puppeteer-core@24 >/dev/null)
cp chat_browser.js "$work/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/dog-chat" --http "127.0.0.1:$port" --limit 2 2>/dev/null &
pid=$!
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
timeout 90 node "$work/chat_browser.js" "http://127.0.0.1:$port"
