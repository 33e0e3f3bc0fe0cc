#!/usr/bin/env bash
# make perf-shutdown: how long `mqtk broker --persist DIR` takes to exit on
# SIGTERM from a hard state.
#
# The state (scripts/hardstate): N idle clients, each with a subscription;
# SILENT sockets that never sent CONNECT; a subscriber that stopped reading,
# its socket buffers and its queue full; a persistent session with QUEUED
# QoS 1 messages waiting for it. --connect-timeout and --write-timeout are
# an hour so that the broker lets none of them go before the signal. The
# time is from SIGTERM to the process's exit, as the shell sees it. After
# each run the broker is started again on the same directory, and the
# offline session must get its QUEUED messages: the store was flushed.
# RUNS runs; prints each and the median. STALLED=0 leaves out the stalled
# subscriber (which makes shutdown wait out its grace period, 250 ms).
#
#   N=1000 SILENT=50 QUEUED=1000 STALLED=1 RUNS=5 scripts/perf-shutdown.sh [path/to/mqtk]
set -euo pipefail
mqtk=$(realpath "${1:-bin/mqtk}")
N=${N:-1000}
SILENT=${SILENT:-50}
QUEUED=${QUEUED:-1000}
STALLED=${STALLED:-1}
RUNS=${RUNS:-5}
ulimit -n $((N * 2 + SILENT + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/hardstate" ./scripts/hardstate

. "$(dirname "$0")/lib.sh" # free_port, wait_port, median

echo "# perf-shutdown: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, N=$N SILENT=$SILENT QUEUED=$QUEUED STALLED=$STALLED RUNS=$RUNS"
: > "$tmp/times"
for run in $(seq 1 "$RUNS"); do
  dir="$tmp/store.$run"
  port=$(free_port)
  "$mqtk" broker --port "$port" --persist "$dir" --max-queued 1000 --sys-interval 1s \
    --connect-timeout 1h --write-timeout 1h 2>"$tmp/broker.log" &
  bpid=$!; pids+=("$bpid")
  wait_port "$port"
  mkfifo "$tmp/hold.$run"
  "$tmp/hardstate" -url "mqtt://127.0.0.1:$port" -n "$N" -silent "$SILENT" -queued "$QUEUED" -stalled="$([ "$STALLED" = 0 ] && echo false || echo true)" < "$tmp/hold.$run" > "$tmp/out" &
  hpid=$!; pids+=("$hpid")
  exec 9>"$tmp/hold.$run"
  until grep -q ready "$tmp/out" 2>/dev/null; do kill -0 "$hpid" || { echo "perf-shutdown: hardstate failed" >&2; exit 1; }; sleep 0.2; done

  start=$(date +%s%N)
  kill -TERM "$bpid"
  code=0; wait "$bpid" || code=$?
  end=$(date +%s%N)
  [ "$code" -eq 0 ] || { echo "perf-shutdown: the broker exited $code:" >&2; cat "$tmp/broker.log" >&2; exit 1; }
  exec 9>&-
  wait "$hpid" || true
  ms=$(( (end - start) / 1000000 ))

  # The store was flushed: the offline session gets its messages back.
  "$mqtk" broker --port "$port" --persist "$dir" 2>/dev/null &
  bpid=$!; pids+=("$bpid")
  wait_port "$port"
  if "$mqtk" sub -p "$port" -t queued -q 1 -c -i offline -C "$QUEUED" -W 10 >/dev/null; then
    kept="all $QUEUED queued messages kept"
  else
    kept="QUEUED MESSAGES LOST"
  fi
  kill "$bpid"; wait "$bpid" 2>/dev/null || true

  printf 'run %d: exit in %d ms after SIGTERM (%s)\n' "$run" "$ms" "$kept"
  echo "$ms" >> "$tmp/times"
done
printf 'median: %d ms from SIGTERM to exit (%d runs)\n' "$(median < "$tmp/times")" "$RUNS"
