#!/usr/bin/env bash
# Runs the `chat` scenario at a series of offered rates against a fresh spawned server and
# writes one JSON report per line (with `offered_rate` added) to the file given, for
# docs/plot_latency.py. Extra arguments go to charla-load (e.g. --database postgres://...).
#
#   load/rate-sweep.sh docs/data/rate-sweep-sqlite.jsonl
#   PG_SWEEP=postgres://postgres@127.0.0.1:5432 load/rate-sweep.sh docs/data/rate-sweep-postgres.jsonl
#
# With PG_SWEEP set, every run gets a fresh PostgreSQL database there, dropped afterwards.
set -euo pipefail
out=${1:?usage: load/rate-sweep.sh OUTPUT.jsonl [charla-load options]}
shift
rates=${RATES:-"1000 2500 5000 10000 20000 30000 45000"}
cd "$(dirname "$0")/.."
cargo build -q --release -p charla-load
: >"$out"
for rate in $rates; do
  echo "rate-sweep: $rate msg/s" >&2
  db=()
  if [ -n "${PG_SWEEP:-}" ]; then
    name="charla_sweep_${rate}_$$"
    psql "$PG_SWEEP/postgres" -qc "CREATE DATABASE $name"
    db=(--database "$PG_SWEEP/$name")
  fi
  ./target/release/charla-load chat --spawn --visitors 100 --operators 4 --duration "${DURATION:-10}" \
    --rate "$rate" --json "${db[@]}" "$@" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); d["offered_rate"]=int(sys.argv[1]); print(json.dumps(d))' "$rate" >>"$out" ||
    echo "rate-sweep: the run at $rate msg/s reported a failure (kept in $out)" >&2
  if [ -n "${PG_SWEEP:-}" ]; then
    psql "$PG_SWEEP/postgres" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)"
  fi
done
