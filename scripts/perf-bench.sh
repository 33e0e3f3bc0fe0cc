#!/usr/bin/env bash
# make perf-bench: is mqtk bench ever the bottleneck? Against mosquitto on
# this machine, RUNS times each (alternating where two tools compete),
# medians printed:
#   A. QoS 0, 10 publishers, as fast as possible: mqtk bench's publish rate
#      against the rate at which mosquitto delivers to one subscriber
#      (mosquitto_sub, counted by receive timestamps), and mqtk bench's CPU.
#   B. QoS 1 and 2 with one message in flight per publisher (10 publishers):
#      mqtk bench against mqtt-benchmark's method (scripts/closedloop:
#      paho.mqtt.golang, publish then wait, per client).
#   C. QoS 1 with windows of 1, 10 and 100: mqtk bench's rate and mosquitto's
#      CPU use (mosquitto is single-threaded: near 100% means it is the limit).
#   D. C again with a core each (taskset: mosquitto on CPU 0, the bench on
#      CPU 1), as a load generator and a broker on separate machines: the
#      broker is the limit when it is near 100% of its core and the bench is
#      not.
#   E. D against mqtk's own broker (also on CPU 0): how fast the same bench
#      on one core goes when the broker is faster than mosquitto.
#
#   RUNS=5 DURATION=5 scripts/perf-bench.sh [path/to/mqtk]
set -euo pipefail
mqtk=$(realpath "${1:-bin/mqtk}")
RUNS=${RUNS:-5}
DURATION=${DURATION:-5}
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] && command -v mosquitto_sub >/dev/null || { echo "perf-bench: needs mosquitto and mosquitto_sub (apt-get install mosquitto mosquitto-clients)" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
here=$(cd "$(dirname "$0")" && pwd)
(cd "$here/.." && go build -o "$tmp/closedloop" ./scripts/closedloop)

. "$(dirname "$0")/lib.sh" # free_port, wait_port, median, mosquitto_on
field() { python3 -c 'import json,sys; print([r for r in map(json.loads, sys.stdin) if r["type"]=="result"][int(sys.argv[2])][sys.argv[1]])' "$1" "${2:-0}"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

port=$(free_port)
mosquitto_on "$port" "$tmp/mosquitto.log"
mpid=$!
pids+=("$mpid")
wait_port "$port"
kport=$(free_port)
taskset -c 0 "$mqtk" broker --port "$kport" 2>"$tmp/mqtk-broker.log" &
kpid=$!
pids+=("$kpid")
wait_port "$kport"
hz=$(getconf CLK_TCK)
bench() { "$mqtk" bench -p "$port" --no-progress --json --duration "$DURATION" --warmup 1 "$@"; }

echo "# perf-bench: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, RUNS=$RUNS DURATION=${DURATION}s, $("$mqtk" --version)"
for run in $(seq 1 "$RUNS"); do
  # A. mosquitto_sub prints each message's receive time; its rate is taken
  # between the 10% and 90% marks, away from start and end.
  mosquitto_sub -p "$port" -t 'mqtk/bench/#' -F '%U' > "$tmp/sub.times" &
  spid=$!
  sleep 0.5 # mosquitto_sub has no "subscribed" signal to wait on
  TIMEFORMAT='%U %S %R'
  { time bench --qos 0 --publishers 10 --subscribers 0 > "$tmp/a.json"; } 2> "$tmp/a.time"
  kill "$spid"; wait "$spid" 2>/dev/null || true
  pub=$(field publish_rate < "$tmp/a.json")
  deliver=$(python3 -c '
import sys
t = [float(l) for l in open(sys.argv[1]) if l.strip()]
a, b = len(t) // 10, len(t) * 9 // 10
print(round((b - a) / (t[b] - t[a]), 1) if b > a and t[b] > t[a] else 0)' "$tmp/sub.times")
  read -r u s r < "$tmp/a.time"
  cpu=$(echo "($u + $s) / $r" | bc -l)
  echo "$pub" >> "$tmp/a.pub"; echo "$deliver" >> "$tmp/a.deliver"; echo "$cpu" >> "$tmp/a.cpu"
  printf 'run %d A qos0: mqtk bench publishes %s msg/s (cpu %.2f cores); mosquitto delivers %s msg/s to mosquitto_sub\n' "$run" "$pub" "$cpu" "$deliver"

  # B. One in flight, both tools, alternating.
  for q in 1 2; do
    r1=$(bench --qos "$q" --publishers 10 --subscribers 0 --inflight 1 | field publish_rate)
    read -r summed wall < <("$tmp/closedloop" -broker "tcp://127.0.0.1:$port" -clients 10 -qos "$q" -count "$(python3 -c "print(int($r1 * $DURATION / 10))")")
    echo "$r1" >> "$tmp/b$q.mqtk"; echo "$wall" >> "$tmp/b$q.cl"; echo "$summed" >> "$tmp/b$q.clsum"
    printf 'run %d B qos%d inflight 1: mqtk bench %s msg/s; closed loop %s msg/s (per-client sum %s)\n' "$run" "$q" "$r1" "$wall" "$summed"
  done

  # C. Windows; D. the same, a core each; E. D against mqtk's broker.
  for pin in c d e; do
    bpid=$mpid bport=$port pinned=""
    if [ "$pin" = d ]; then taskset -pc 0 "$mpid" >/dev/null; pinned="taskset -c 1"; fi
    if [ "$pin" = e ]; then bpid=$kpid bport=$kport pinned="taskset -c 1"; fi
    for w in 1 10 100; do
      t0=$(ticks "$bpid"); s0=$(date +%s.%N)
      { time $pinned "$mqtk" bench -p "$bport" --no-progress --json --duration "$DURATION" --warmup 1 --qos 1 --publishers 10 --subscribers 0 --inflight "$w" > "$tmp/c.json"; } 2> "$tmp/c.time"
      t1=$(ticks "$bpid"); s1=$(date +%s.%N)
      rate=$(field publish_rate < "$tmp/c.json")
      busy=$(echo "($t1 - $t0) / $hz / ($s1 - $s0) * 100" | bc -l)
      read -r u s r < "$tmp/c.time"
      own=$(echo "($u + $s) / $r * 100" | bc -l)
      echo "$rate" >> "$tmp/$pin$w.rate"; echo "$busy" >> "$tmp/$pin$w.cpu"; echo "$own" >> "$tmp/$pin$w.own"
      printf 'run %d %s qos1 inflight %3d: mqtk bench %s msg/s; cpu over the whole run: broker %.0f%%, mqtk bench %.0f%% (of one core)\n' "$run" "${pin^^}" "$w" "$rate" "$busy" "$own"
    done
    taskset -pc 0-$(($(nproc) - 1)) "$mpid" >/dev/null
  done
done

echo "median of $RUNS runs:"
printf '  A qos0 10 publishers: mqtk bench %s msg/s at %.2f cores; mosquitto to one subscriber %s msg/s\n' \
  "$(median < "$tmp/a.pub")" "$(median < "$tmp/a.cpu")" "$(median < "$tmp/a.deliver")"
for q in 1 2; do
  printf '  B qos%d inflight 1: mqtk bench %s msg/s; closed loop %s msg/s (per-client sum %s); ratio %.2f\n' "$q" \
    "$(median < "$tmp/b$q.mqtk")" "$(median < "$tmp/b$q.cl")" "$(median < "$tmp/b$q.clsum")" \
    "$(echo "$(median < "$tmp/b$q.mqtk") / $(median < "$tmp/b$q.cl")" | bc -l)"
done
for pin in c d e; do
  for w in 1 10 100; do
    printf '  %s qos1 inflight %3d: mqtk bench %s msg/s; cpu broker %.0f%%, mqtk bench %.0f%%\n' "${pin^^}" "$w" "$(median < "$tmp/$pin$w.rate")" "$(median < "$tmp/$pin$w.cpu")" "$(median < "$tmp/$pin$w.own")"
  done
done
