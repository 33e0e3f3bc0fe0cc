#!/usr/bin/env bash
# make perf-latency: where the end-to-end latency at 1,000 msg/s goes, for
# mqtk's broker and mosquitto side by side. Each run of mqtk bench (QoS
# $QOS, one publisher to one subscriber, --rate 1000) is captured on lo with
# tcpdump, and scripts/pcap_latency.py reads off the wire, per message, the
# load generator's lateness, the broker's residence time (its PUBLISH out
# less the publisher's PUBLISH in, wake-up included) and, at QoS 1, the
# subscriber's reaction. Printed per run: bench's end-to-end p50/p90/p99 and
# those three as p50/p90/p99, in µs; then the medians over the runs.
#
#   RUNS=6 DURATION=10s QOS=1 scripts/perf-latency.sh [path/to/mqtk]
#
# Needs tcpdump and the right to capture (root or CAP_NET_RAW). Both
# brokers get WARM (3s) of QoS 0 at full speed first, as in perf-broker.sh;
# which broker goes first alternates from run to run. The capture itself
# costs each packet a copy, the same for both.
set -euo pipefail
mqtk=$(realpath "${1:-bin/mqtk}")
RUNS=${RUNS:-6}
DURATION=${DURATION:-10s}
QOS=${QOS:-1}
WARM=${WARM:-3s}
here=$(dirname "$(realpath "$0")")
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "perf-latency: needs mosquitto (apt-get install mosquitto)" >&2; exit 2; }
command -v tcpdump > /dev/null || { echo "perf-latency: needs tcpdump (apt-get install tcpdump)" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

. "$here/lib.sh" # free_port, wait_port, median, mosquitto_on, warm

declare -A port
port[mosquitto]=$(free_port)
mosquitto_on "${port[mosquitto]}" "$tmp/mosquitto.log"
pids+=($!)
port[mqtk]=$(free_port)
"$mqtk" broker --port "${port[mqtk]}" 2>"$tmp/mqtk.log" &
pids+=($!)
wait_port "${port[mosquitto]}"
wait_port "${port[mqtk]}"

# capture PORT FILE: starts tcpdump on lo for PORT and returns once it is
# capturing (it says "listening on" then); its pid in $cap.
capture() {
  tcpdump -i lo -s 0 -B 16384 --time-stamp-precision=nano -w "$2" "tcp port $1" 2> "$2.log" &
  cap=$!
  for _ in $(seq 1 200); do
    grep -q "listening on" "$2.log" && return 0
    kill -0 "$cap" 2>/dev/null || break
    sleep 0.05
  done
  echo "perf-latency: tcpdump did not start: $(cat "$2.log")" >&2
  exit 2
}

echo "# perf-latency: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, QOS=$QOS RUNS=$RUNS DURATION=$DURATION WARM=$WARM, $("$mosquitto" -h 2>/dev/null | head -1), $("$mqtk" --version)"
warm "$mqtk" "$WARM" "${port[mosquitto]}" "${port[mqtk]}"
echo "per run, p50/p90/p99 in µs: e2e (mqtk bench), late (publisher), resid (broker), react (subscriber, QoS 1)"
for run in $(seq 1 "$RUNS"); do
  order="mosquitto mqtk"
  if [ $((run % 2)) = 0 ]; then order="mqtk mosquitto"; fi
  for b in $order; do
    capture "${port[$b]}" "$tmp/$b.pcap"
    "$mqtk" bench -p "${port[$b]}" --no-progress --json --duration "$DURATION" --warmup 1s \
      --qos "$QOS" --publishers 1 --subscribers 1 --rate 1000 > "$tmp/out.json"
    kill -INT "$cap"
    wait "$cap" || true
    line="$(python3 -c '
import json, sys
r = [r for r in map(json.loads, sys.stdin) if r["type"] == "result"][-1]["e2e_latency_us"]
print("e2e %.0f/%.0f/%.0f" % (r["p50"], r["p90"], r["p99"]))' < "$tmp/out.json") $(python3 "$here/pcap_latency.py" "$tmp/$b.pcap" "${port[$b]}")"
    printf '  %d %-9s %s\n' "$run" "$b" "$line" | tee -a "$tmp/runs"
  done
done

echo "median of $RUNS runs, p50/p90/p99 in µs:"
for b in mosquitto mqtk; do
  out=""
  for f in e2e late resid react; do
    grep " $b " "$tmp/runs" | grep -q " $f " || continue
    m=""
    for i in 1 2 3; do
      m+="$(grep " $b " "$tmp/runs" | sed -n "s/.* $f \([0-9/]*\).*/\1/p" | cut -d/ -f$i | median)/"
    done
    out+=" $f ${m%/}"
  done
  printf '  %-9s%s\n' "$b" "$out"
done
