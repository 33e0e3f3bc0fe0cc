#!/usr/bin/env bash
# make perf-broker: mqtk's broker against mosquitto, the same load from the
# same load generator (mqtk bench), side by side in one run.
#
# Both brokers run as separate processes on loopback with their defaults
# (mosquitto: a listener and allow_anonymous; mqtk: `mqtk broker --port`).
# Each scenario runs RUNS times on each broker, the two runs of a round back
# to back and which goes first alternating from round to round. Printed: the
# medians and their ratio mqtk/mosquitto, and the median of the rounds' own
# ratios (the fairer figure for latency on a machine whose load drifts) with
# a 95% confidence interval for it (from 6 rounds on): an interval that
# holds 1 means this run cannot tell the two apart:
#   qos0-1to1     QoS 0, 1 publisher -> 1 subscriber, as fast as possible: deliveries/s
#   qos0-1to10    QoS 0, 1 publisher -> 10 subscribers: deliveries/s (all subscribers)
#   qos1-1to1     QoS 1, 1 publisher (window 100) -> 1 subscriber: deliveries/s
#   p99-1000      QoS 1 at 1,000 msg/s, 1 -> 1: end-to-end p99 (ms)
#   p99-1000-qos0 the same at QoS 0 (ms)
#   p99-stalled   the same with a second subscriber that stops reading: the
#                 healthy subscriber's end-to-end p99 (ms)
#
#   RUNS=3 DURATION=5s SCENARIOS="p99-1000 p99-stalled" scripts/perf-broker.sh [path/to/mqtk]
#
# (The interval needs RUNS=6 or more; it assumes the rounds independent,
# which a load drifting over minutes is not quite.)
#
# Before the first round every broker gets WARM (default 3s, 0 for none) of
# QoS 0 as fast as possible, unmeasured: a broker that has run a while has
# its memory in place, and a freshly started mqtk broker does not (its heap
# grows into fresh pages, a page fault every few messages at 1,000 msg/s,
# until its first collection; see docs/performance.md).
#
# SCENARIOS picks some of the above (default: all); MQTK_BROKER_ARGS adds
# options to `mqtk broker` (an A/B of a setting). AA=1 adds a second
# mosquitto, run like the others, and prints its figures against the first
# (an A/A comparison: what this machine's noise alone makes of two equal
# brokers).
set -euo pipefail
mqtk=$(realpath "${1:-bin/mqtk}")
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "perf-broker: needs mosquitto (apt-get install mosquitto)" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

. "$(dirname "$0")/lib.sh" # free_port, wait_port, median, mosquitto_on, warm

declare -A port
port[mosquitto]=$(free_port)
mosquitto_on "${port[mosquitto]}" "$tmp/mosquitto.log"
pids+=($!)
brokers="mosquitto mqtk"
if [ -n "${AA:-}" ]; then
  port[mosquitto-b]=$(free_port)
  mosquitto_on "${port[mosquitto-b]}" "$tmp/mosquitto-b.log"
  pids+=($!)
  brokers="mosquitto mosquitto-b mqtk"
fi
port[mqtk]=$(free_port)
"$mqtk" broker --port "${port[mqtk]}" ${MQTK_BROKER_ARGS:-} 2>"$tmp/mqtk.log" &
pids+=($!)
for b in $brokers; do wait_port "${port[$b]}"; done

# stall PORT: a subscriber to the bench topics that never reads its socket.
stall() {
  python3 - "$1" <<'EOF' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
cid = b"perf-stalled"
s.sendall(bytes([0x10, 12 + len(cid), 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, len(cid)]) + cid)
f = b"mqtk/bench/#"
s.sendall(bytes([0x82, 5 + len(f), 0, 1, 0, len(f)]) + f + bytes([1]))
time.sleep(3600)  # and never read again
EOF
  stall_pid=$!
}

# scenario RUN NAME METRIC BENCH-ARGS...: one run against each broker, the
# order rotated by one from round to round (with two: mosquitto first in
# odd rounds).
scenario() {
  local run=$1 name=$2 metric=$3; shift 3
  local order
  order=$(echo $brokers | awk -v r="$run" '{for (i = 0; i < NF; i++) printf "%s ", $((i + r - 1) % NF + 1)}')
  for b in $order; do
    local stall_pid=
    if [ "$name" = p99-stalled ]; then stall "${port[$b]}"; fi
    "$mqtk" bench -p "${port[$b]}" --no-progress --json --duration "$DURATION" --warmup 1s "$@" > "$tmp/out.json"
    [ -n "$stall_pid" ] && kill "$stall_pid" 2>/dev/null && wait "$stall_pid" 2>/dev/null || true
    python3 -c '
import json, sys
r = [r for r in map(json.loads, sys.stdin) if r["type"] == "result"][-1]
print(r["e2e_latency_us"]["p99"] / 1000 if sys.argv[1] == "p99" else r[sys.argv[1]])' "$metric" < "$tmp/out.json" >> "$tmp/$name.$b"
    printf '  %-13s %-11s %s=%s lost=%s\n' "$name" "$b" "$metric" "$(tail -1 "$tmp/$name.$b")" \
      "$(python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin][-1]["lost"])' < "$tmp/out.json")"
  done
}

WARM=${WARM:-3s}
echo "# perf-broker: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, RUNS=$RUNS DURATION=$DURATION WARM=$WARM${AA:+ AA=1}, $("$mosquitto" -h 2>/dev/null | head -1), $("$mqtk" --version)"
all="qos0-1to1 qos0-1to10 qos1-1to1 p99-1000 p99-1000-qos0 p99-stalled"
SCENARIOS=${SCENARIOS:-$all}
declare -A args=(
  [qos0-1to1]="receive_rate --qos 0 --publishers 1 --subscribers 1"
  [qos0-1to10]="receive_rate --qos 0 --publishers 1 --subscribers 10"
  [qos1-1to1]="receive_rate --qos 1 --publishers 1 --subscribers 1 --inflight 100"
  [p99-1000]="p99 --qos 1 --publishers 1 --subscribers 1 --rate 1000"
  [p99-1000-qos0]="p99 --qos 0 --publishers 1 --subscribers 1 --rate 1000"
  [p99-stalled]="p99 --qos 1 --publishers 1 --subscribers 1 --rate 1000"
)
for name in $SCENARIOS; do
  [ -n "${args[$name]:-}" ] || { echo "perf-broker: unknown scenario $name (known: $all)" >&2; exit 2; }
done
# shellcheck disable=SC2046 # the ports are words
warm "$mqtk" "$WARM" $(for b in $brokers; do echo "${port[$b]}"; done)
for run in $(seq 1 "$RUNS"); do
  echo "run $run"
  for name in $SCENARIOS; do
    # shellcheck disable=SC2086 # the arguments are words
    scenario "$run" "$name" ${args[$name]}
  done
done

# ci95: a 95% confidence interval of the median of the numbers on stdin,
# free of assumptions about their distribution (order statistics: the
# interval from the k-th smallest to the k-th largest covers the median
# with probability 1 - 2 P(Binomial(n, 1/2) < k)); "-" under 6 numbers,
# which cannot give one.
ci95() {
  python3 -c '
import math, sys
r = sorted(float(x) for x in sys.stdin)
n = len(r)
cdf = lambda k: sum(math.comb(n, i) for i in range(k + 1)) / 2**n
k = 1
while k < n // 2 and 1 - 2 * cdf(k) >= 0.95:
    k += 1
print(f"{r[k-1]:.2f}-{r[n-k]:.2f}" if n and 1 - 2 * cdf(k - 1) >= 0.95 else "-")'
}

# compare NAME B: one line of the summary, broker B against mosquitto.
compare() {
  local a b
  a=$(median < "$tmp/$1.mosquitto"); b=$(median < "$tmp/$1.$2")
  paste "$tmp/$1.$2" "$tmp/$1.mosquitto" | awk '{print $1 / $2}' > "$tmp/$1.$2.ratios"
  printf '  %-13s %14s %14s %8.2f %12.2f %11s\n' "$1" "$a" "$b" "$(echo "$b / $a" | bc -l)" \
    "$(median < "$tmp/$1.$2.ratios")" "$(ci95 < "$tmp/$1.$2.ratios")"
}

echo "median of $RUNS runs (round-ratio: the median of the rounds' own ratios, with its 95% interval):"
printf '  %-13s %14s %14s %8s %12s %11s\n' scenario mosquitto mqtk ratio round-ratio interval
for name in $SCENARIOS; do compare "$name" mqtk; done
if [ -n "${AA:-}" ]; then
  echo "A/A: the second mosquitto against the first (in the mqtk column):"
  for name in $SCENARIOS; do compare "$name" mosquitto-b; done
fi
