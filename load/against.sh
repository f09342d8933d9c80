#!/usr/bin/env bash
# Runs one harness scenario against a given `charla` server binary on a fresh SQLite file,
# so two builds of the server can be compared with the same harness (docs/BENCHMARKS.md,
# "Where the time goes"). With PERF=FILE, records a `perf` profile of the server for 10 s
# in the middle of the run.
#
#   load/against.sh SERVER_BIN chat|rate|connections [HARNESS_BIN]
#
#   chat         100 visitors, 4 operators, as fast as acked, 10 s (25 s with PERF)
#   rate         the same at 5,000 messages/s
#   connections  10,000 idle visitors held for 3 s
#
# Prints the harness's JSON report on stdout.
set -euo pipefail
bin=$(realpath "${1:?usage: load/against.sh SERVER_BIN chat|rate|connections [HARNESS_BIN]}")
what=${2:?usage: load/against.sh SERVER_BIN chat|rate|connections [HARNESS_BIN]}
harness=$(realpath "${3:-$(dirname "$0")/../target/release/charla-load}")

dir=$(mktemp -d)
cd "$dir"
port=$((18000 + RANDOM % 1000))
export CHARLA_ADDR=127.0.0.1:$port CHARLA_DATABASE_URL=$dir/charla.db CHARLA_RATE_PER_SEC=0 CHARLA_LOG=warn
export CHARLA_STATIC_DIR=$dir/static
mkdir -p "$CHARLA_STATIC_DIR"
password=against-$RANDOM-$RANDOM
echo "$password" | "$bin" operator add load@example.com Load --admin >/dev/null
"$bin" serve >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done

duration=10
[ -n "${PERF:-}" ] && duration=25
common=(--url "http://127.0.0.1:$port" --server-pid "$pid" --json)
chat=(--operator-email load@example.com --operator-password "$password" --visitors 100 --operators 4 --duration "$duration")
case $what in
  chat) args=(chat "${common[@]}" "${chat[@]}") ;;
  rate) args=(chat "${common[@]}" "${chat[@]}" --rate 5000) ;;
  connections) args=(connections "${common[@]}" --visitors 10000 --hold 3) ;;
  *) echo "against.sh: unknown scenario $what" >&2; exit 2 ;;
esac
"$harness" "${args[@]}" 2>/dev/null &
load=$!
if [ -n "${PERF:-}" ]; then
  sleep 8
  perf record -F 999 -o "$PERF" -p "$pid" -- sleep 10 >/dev/null 2>&1
fi
wait $load
