#!/usr/bin/env bash
# make perf-conns: memory per idle connection, mqtk broker against mosquitto.
#
# For each broker: its resident memory (VmRSS) before and after N clients
# connect (MQTT 5, keep-alive 600s, one QoS 1 subscription each) and stay
# idle; prints the growth per connection. RUNS runs each; medians.
#
#   N=5000 RUNS=3 scripts/perf-conns.sh [path/to/mqtk]
set -euo pipefail
mqtk=$(realpath "${1:-bin/mqtk}")
N=${N:-5000}
RUNS=${RUNS:-3}
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
ulimit -n $((N * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/conns" ./scripts/conns

. "$(dirname "$0")/lib.sh" # free_port, wait_port, median, mosquitto_on
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

echo "# perf-conns: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, N=$N RUNS=$RUNS"
for broker in mosquitto mqtk; do
  : > "$tmp/per"
  for run in $(seq 1 "$RUNS"); do
    port=$(free_port)
    case $broker in
      mosquitto) mosquitto_on "$port" "$tmp/mosquitto.log" "user root" "max_connections -1" ;;
      mqtk)      "$mqtk" broker --port "$port" 2>/dev/null & ;;
    esac
    bpid=$!; pids+=("$bpid")
    wait_port "$port"
    before=$(rss_kb "$bpid")
    mkfifo "$tmp/hold.$run.$broker"
    "$tmp/conns" -url "mqtt://127.0.0.1:$port" -n "$N" < "$tmp/hold.$run.$broker" > "$tmp/out" &
    cpid=$!
    exec 9>"$tmp/hold.$run.$broker"
    until grep -q connected "$tmp/out" 2>/dev/null; do kill -0 "$cpid" || exit 1; sleep 0.2; done
    after=$(rss_kb "$bpid")
    exec 9>&-
    wait "$cpid"
    per=$(echo "($after - $before) / $N" | bc -l)
    printf '%-9s run %d: RSS %d KiB -> %d KiB, %.2f KiB per connection\n' "$broker" "$run" "$before" "$after" "$per"
    echo "$per" >> "$tmp/per"
    kill "$bpid"; wait "$bpid" 2>/dev/null || true
  done
  printf '%-9s median: %.2f KiB per idle connection\n' "$broker" "$(median < "$tmp/per")"
done
