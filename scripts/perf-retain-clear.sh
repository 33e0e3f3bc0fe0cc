#!/usr/bin/env bash
# make perf-retain-clear: how long does `mqtk retain-clear` take to clear N
# retained topics, on mosquitto and on mqtk's broker?
#
# Each run fills perf/0 ... perf/N-1 with retained messages (scripts/retainfill:
# QoS 1, pipelined), then times `mqtk retain-clear -t 'perf/#' --yes
# --quiet-period QUIET` from start to exit (wall and CPU time of mqtk), and
# checks that nothing is left under perf/#. The wall time includes one quiet
# period per collection (the first, and the check after each pass); "work" is
# the wall time less those waits: connecting, collecting, clearing. RUNS
# runs per broker; medians.
#
#   N=10000 RUNS=3 QUIET=1s scripts/perf-retain-clear.sh [path/to/mqtk]
set -euo pipefail
mqtk=$(realpath "${1:-bin/mqtk}")
N=${N:-10000}
RUNS=${RUNS:-3}
QUIET=${QUIET:-1s}
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "perf-retain-clear: needs mosquitto (apt-get install mosquitto)" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
here=$(cd "$(dirname "$0")" && pwd)
(cd "$here/.." && go build -o "$tmp/retainfill" ./scripts/retainfill)

. "$(dirname "$0")/lib.sh" # free_port, wait_port, median, mosquitto_on
quiet_s=$(python3 -c 'import sys; s=sys.argv[1]; print(float(s[:-2])/1000 if s.endswith("ms") else float(s.rstrip("s")))' "$QUIET")

echo "# perf-retain-clear: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, N=$N RUNS=$RUNS QUIET=$QUIET"
for broker in mosquitto mqtk; do
  port=$(free_port)
  case $broker in
    mosquitto) mosquitto_on "$port" "$tmp/broker.log" "user root" ;;
    mqtk)      "$mqtk" broker --port "$port" 2>"$tmp/broker.log" & ;;
  esac
  bpid=$!; pids+=("$bpid")
  wait_port "$port"
  : > "$tmp/wall"; : > "$tmp/work"; : > "$tmp/cpu"
  for run in $(seq 1 "$RUNS"); do
    "$tmp/retainfill" -url "mqtt://127.0.0.1:$port" -n "$N" -prefix perf
    TIMEFORMAT='%U %S %R'
    { time "$mqtk" retain-clear -p "$port" -t 'perf/#' --yes --quiet-period "$QUIET" 2>"$tmp/rc.err"; } 2>"$tmp/t"
    read -r u s r < "$tmp/t"
    grep -q '^cleared' "$tmp/rc.err" || { cat "$tmp/rc.err" >&2; exit 1; }
    passes=$(sed -n 's/.* in \([0-9]*\) passes.*/\1/p' "$tmp/rc.err"); passes=${passes:-1}
    left=$("$mqtk" retain-clear -p "$port" -t 'perf/#' --dry-run --quiet-period "$QUIET" 2>/dev/null | wc -l)
    [ "$left" -eq 0 ] || { echo "perf-retain-clear: $left topics left under perf/#" >&2; exit 1; }
    work=$(echo "$r - ($passes + 1) * $quiet_s" | bc -l)
    echo "$r" >> "$tmp/wall"; echo "$work" >> "$tmp/work"; echo "$u + $s" | bc >> "$tmp/cpu"
    printf '%-9s run %d: wall %.2fs (work %.2fs, %d pass(es)), mqtk cpu %.2fs — %s\n' "$broker" "$run" "$r" "$work" "$passes" \
      "$(tail -1 "$tmp/cpu")" "$(tail -1 "$tmp/rc.err")"
  done
  printf '%-9s median: wall %.2fs, work %.2fs, mqtk cpu %.2fs for %d topics\n' "$broker" \
    "$(median < "$tmp/wall")" "$(median < "$tmp/work")" "$(median < "$tmp/cpu")" "$N"
  kill "$bpid"; wait "$bpid" 2>/dev/null || true
done
