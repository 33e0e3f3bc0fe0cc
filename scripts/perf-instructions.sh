#!/usr/bin/env bash
# make perf-instructions: the user-space instructions each broker executes
# per message, mqtk's broker against mosquitto, counted by valgrind's
# callgrind. Unlike a time, the count is the same from run to run (within
# 0.5%) whatever else the machine is doing, so a change to the broker's
# path can be measured on a noisy machine. It leaves out the kernel's part
# (the loopback read and write, most of the CPU a message costs) and the
# time spent waiting.
#
# For each broker and QoS: the broker runs under callgrind, `mqtk bench`
# warms it up (2 s), the counters are zeroed, and N messages are sent at
# RATE msg/s from 1 publisher to 1 subscriber; the count is then read and
# divided by N (the connections of the two bench clients are in it).
#
#   N=4000 RATE=200 QOS="0 1" scripts/perf-instructions.sh [path/to/mqtk]
#
# Needs valgrind (apt-get install valgrind). mqtk's broker runs with
# GODEBUG=asyncpreemptoff=1: callgrind fails an assertion on the signals Go
# preempts goroutines with. To see where the instructions go, keep the
# output (KEEP=dir) and build mqtk without -s -w:
#   go build -trimpath -o /tmp/mqtk ./cmd/mqtk && KEEP=/tmp/cg scripts/perf-instructions.sh /tmp/mqtk
#   callgrind_annotate --inclusive=yes /tmp/cg/mqtk-qos0.out | head -60
set -euo pipefail
mqtk=$(realpath "${1:-bin/mqtk}")
N=${N:-4000}
RATE=${RATE:-200}
QOS=${QOS:-0 1}
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "perf-instructions: needs mosquitto (apt-get install mosquitto)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "perf-instructions: needs valgrind (apt-get install valgrind)" >&2; exit 2; }

tmp=$(mktemp -d)
vg=
cleanup() { [ -z "$vg" ] || kill "$vg" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

. "$(dirname "$0")/lib.sh" # free_port, wait_port

duration=$(awk -v n="$N" -v r="$RATE" 'BEGIN {printf "%gs", n / r}')

# count NAME QOS BROKER-COMMAND...: instructions per message.
count() {
  local name=$1 qos=$2 port=$3
  shift 3
  valgrind --tool=callgrind --callgrind-out-file="$tmp/$name.out" "$@" 2>"$tmp/$name.log" &
  vg=$!
  wait_port "$port"
  local b=(--host 127.0.0.1 --port "$port" --qos "$qos" --rate "$RATE" --publishers 1 --subscribers 1)
  "$mqtk" bench "${b[@]}" --duration 2s --warmup 1s >/dev/null
  callgrind_control --zero "$vg" >/dev/null 2>&1
  "$mqtk" bench "${b[@]}" --duration "$duration" --warmup 0s >"$tmp/$name.bench"
  callgrind_control --dump "$vg" >/dev/null 2>&1
  kill "$vg"
  wait "$vg" 2>/dev/null || true
  vg=
  local out
  out=$(ls -t "$tmp/$name.out".* | head -1)
  [ -z "${KEEP:-}" ] || { mkdir -p "$KEEP"; cp "$out" "$KEEP/$name.out"; }
  callgrind_annotate "$out" 2>/dev/null | awk -v n="$N" '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "%.0f\n", $1 / n}'
}

printf '%-4s %14s %14s %7s\n' QoS mosquitto "mqtk broker" ratio
for q in $QOS; do
  p=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser %s\n' "$p" "$(id -un)" >"$tmp/m.conf"
  m=$(count "mosquitto-qos$q" "$q" "$p" "$mosquitto" -c "$tmp/m.conf")
  p=$(free_port)
  k=$(GODEBUG=asyncpreemptoff=1 count "mqtk-qos$q" "$q" "$p" "$mqtk" broker --port "$p")
  printf '%-4s %14s %14s %7.2f\n' "$q" "$m" "$k" "$(awk -v a="$k" -v b="$m" 'BEGIN {print a / b}')"
done
echo "(user-space instructions per message, $N messages at $RATE msg/s, 1 -> 1)"
