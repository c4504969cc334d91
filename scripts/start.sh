#!/usr/bin/env bash
# The main job: installs what is missing, builds, and serves the example chat app.
#   scripts/start.sh [--http HOST:PORT] [--limit N]
# Today this is one node; the cluster issues turn it into a local multi-node cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target dog-chat
echo "dog-chat: open http://127.0.0.1:8080 in a browser (Ctrl-C stops it)" >&2
exec build/bin/dog-chat --http 127.0.0.1:8080 "$@"
