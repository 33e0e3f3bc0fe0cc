#!/usr/bin/env bash
# make perf-sub: does `mqtk sub` keep up with mosquitto_sub?
#
# Both subscribers receive the same N messages of SIZE bytes from the same
# broker at the same time (QoS 1, each on a persistent session created
# beforehand, so neither can miss a message by subscribing late), writing to
# /dev/null. Reported per run: each subscriber's CPU time (user+sys) and wall
# time until it had all N. Runs against mosquitto and against mqtk's broker;
# prints the medians and the ratio mqtk/mosquitto_sub.
#
#   N=200000 SIZE=100 RUNS=5 scripts/perf-sub.sh [path/to/mqtk]
set -euo pipefail
mqtk=$(realpath "${1:-bin/mqtk}")
N=${N:-200000}
SIZE=${SIZE:-100}
RUNS=${RUNS:-5}
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
command -v mosquitto_sub >/dev/null || { echo "perf-sub: needs mosquitto_sub (apt-get install mosquitto-clients)" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

. "$(dirname "$0")/lib.sh" # free_port, wait_port, median, mosquitto_on

# N lines of SIZE bytes each: the messages.
head -c $((N * SIZE)) /dev/zero | tr '\0' 'x' | fold -w "$SIZE" > "$tmp/lines"
[ "$(wc -l < "$tmp/lines")" -eq "$N" ] || echo >> "$tmp/lines"


run_broker() { # name -> sets port, starts the broker
  port=$(free_port)
  case $1 in
    mosquitto)
      mosquitto_on "$port" "$tmp/broker.log" "max_queued_messages 0" "user root" ;;
    mqtk)
      # As mosquitto above (max_queued_messages 0): room for every message
      # published while a subscriber reconnects to its session.
      "$mqtk" broker --port "$port" --max-inflight 65535 --max-queued 65535 2>"$tmp/broker.log" & ;;
  esac
  broker_pid=$!
  pids+=("$broker_pid")
  wait_port "$port"
}

echo "# perf-sub: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, N=$N SIZE=$SIZE RUNS=$RUNS"
for broker in mosquitto mqtk; do
  run_broker "$broker"
  : > "$tmp/mqtk.cpu"; : > "$tmp/mosq.cpu"; : > "$tmp/mqtk.wall"; : > "$tmp/mosq.wall"
  for run in $(seq 1 "$RUNS"); do
    # Persistent sessions first: from here on the broker keeps every message.
    "$mqtk" sub -p "$port" -t perf -q 1 -c -i "perf-mqtk-$run" -E
    mosquitto_sub -p "$port" -t perf -q 1 -c -i "perf-mosq-$run" -E
    TIMEFORMAT='%U %S %R'
    ( time "$mqtk" sub -p "$port" -t perf -q 1 -c -i "perf-mqtk-$run" -C "$N" >/dev/null ) 2>"$tmp/t.mqtk" &
    a=$!
    ( time mosquitto_sub -p "$port" -t perf -q 1 -c -i "perf-mosq-$run" -C "$N" >/dev/null ) 2>"$tmp/t.mosq" &
    b=$!
    "$mqtk" pub -p "$port" -t perf -q 1 -l < "$tmp/lines"
    wait "$a" "$b"
    read -r u s r < "$tmp/t.mqtk"; echo "$u + $s" | bc >> "$tmp/mqtk.cpu"; echo "$r" >> "$tmp/mqtk.wall"
    read -r u s r < "$tmp/t.mosq"; echo "$u + $s" | bc >> "$tmp/mosq.cpu"; echo "$r" >> "$tmp/mosq.wall"
    printf '%-9s run %d: mqtk sub cpu %ss wall %ss | mosquitto_sub cpu %ss wall %ss\n' "$broker" "$run" \
      "$(tail -1 "$tmp/mqtk.cpu")" "$(tail -1 "$tmp/mqtk.wall")" "$(tail -1 "$tmp/mosq.cpu")" "$(tail -1 "$tmp/mosq.wall")"
  done
  mc=$(median < "$tmp/mqtk.cpu"); oc=$(median < "$tmp/mosq.cpu")
  mw=$(median < "$tmp/mqtk.wall"); ow=$(median < "$tmp/mosq.wall")
  printf '%-9s median: mqtk sub cpu %ss wall %ss | mosquitto_sub cpu %ss wall %ss | cpu ratio %.2f, wall ratio %.2f\n' \
    "$broker" "$mc" "$mw" "$oc" "$ow" "$(echo "$mc / $oc" | bc -l)" "$(echo "$mw / $ow" | bc -l)"
  kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
done
