#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/README.md) with clang-14 in build-fuzz/, replays every
# committed corpus and crash regression through them, then fuzzes each target briefly.
#   scripts/fuzz.sh                    replay, then 10 s of fuzzing per target (what CI runs)
#   scripts/fuzz.sh --replay-only      replay only
#   scripts/fuzz.sh --time N           N seconds of fuzzing per target
#   scripts/fuzz.sh --runs N TARGET    one target for N executions (a long run; nice -n 19)
# New inputs go to build-fuzz/work/<target>/, crashes to build-fuzz/artifacts/; the committed
# corpus is never written. Exits non-zero if a replay or a fuzzing run crashes.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(http_connection ws_codec swim_packet rpc_handshake rpc_frames node_calls object_id chat_message)
seconds=10
runs=""
replay_only=0
while (($#)); do
  case "$1" in
    --replay-only) replay_only=1 ;;
    --time) seconds="$2"; shift ;;
    --runs) runs="$2"; targets=("$3"); shift 2 ;;
    *) echo "usage: scripts/fuzz.sh [--replay-only | --time N | --runs N TARGET]" >&2; exit 2 ;;
  esac
  shift
done

scripts/setup.sh
start=$(date +%s)
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDOG_FUZZ=ON \
  -DDOG_WITH_ROUTING=ON -DDOG_WITH_MEMBERSHIP=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}"
echo "fuzz: targets built after $(( $(date +%s) - start )) s" >&2

# Inputs are bounded per target: big enough for the largest seed, small enough to stay fast.
max_len() {
  case "$1" in
    http_connection) echo 16384 ;; chat_message) echo 65536 ;; node_calls) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p build-fuzz/work build-fuzz/artifacts
for t in "${targets[@]}"; do
  dirs=(tests/fuzz/"$t")
  if [[ -d tests/fuzz/regressions/$t ]]; then dirs+=(tests/fuzz/regressions/"$t"); fi
  build-fuzz/bin/fuzz_"$t" -runs=0 "${dirs[@]}" 2>&1 | grep -E "^#[0-9]+[[:space:]]+DONE" || {
    echo "fuzz: replay of $t failed" >&2; exit 1; }
done
echo "fuzz: corpora replayed after $(( $(date +%s) - start )) s" >&2
if ((replay_only)); then exit 0; fi

for t in "${targets[@]}"; do
  mkdir -p build-fuzz/work/"$t"
  limit=(-max_total_time="$seconds")
  if [[ -n $runs ]]; then limit=(-runs="$runs"); fi
  nice -n 19 build-fuzz/bin/fuzz_"$t" "${limit[@]}" -max_len="$(max_len "$t")" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/"$t"- \
    build-fuzz/work/"$t" tests/fuzz/"$t" >build-fuzz/work/"$t".log 2>&1 || {
      tail -40 build-fuzz/work/"$t".log >&2; echo "fuzz: $t crashed (build-fuzz/artifacts/)" >&2; exit 1; }
  echo "fuzz: $t $(grep -E '^#[0-9]+[[:space:]]+DONE' build-fuzz/work/"$t".log | tail -1)" >&2
done
echo "fuzz: done after $(( $(date +%s) - start )) s" >&2
