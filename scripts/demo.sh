#!/usr/bin/env bash
# make demo: start mqtk's broker on a free loopback port, subscribe, publish
# three messages, show what arrived, stop everything. Needs nothing outside
# this machine.
set -euo pipefail
mqtk=${1:-bin/mqtk}
tmp=$(mktemp -d)
broker_pid=""
cleanup() {
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

"$mqtk" broker --port 0 2>"$tmp/broker.log" &
broker_pid=$!
for _ in $(seq 1 200); do   # the broker prints its address once it listens
  grep -q '^listening on' "$tmp/broker.log" 2>/dev/null && break
  kill -0 "$broker_pid" 2>/dev/null || { cat "$tmp/broker.log" >&2; exit 1; }
  sleep 0.05
done
url=$(sed -n 's/^listening on \(mqtt:\/\/[^ ]*\).*/\1/p' "$tmp/broker.log" | head -n 1)
[ -n "$url" ] || { echo "demo: the broker did not start" >&2; exit 1; }
port=${url##*:}
echo "\$ mqtk broker --port 0"
echo "listening on $url"

# The messages are retained, so the subscriber receives all three whether it
# subscribes before or after they are published: no race to wait out.
echo "\$ mqtk sub -p $port -t 'demo/#' -v -C 3 &"
timeout 30 "$mqtk" sub -p "$port" -t 'demo/#' -v -C 3 >"$tmp/received" &
sub_pid=$!

echo "\$ mqtk pub -p $port -t demo/greeting -m 'hello from mqtk' -r"
"$mqtk" pub -p "$port" -t demo/greeting -m 'hello from mqtk' -r
echo "\$ mqtk pub -p $port -t demo/sensor/temp -m 21.5 -q 1 -r"
"$mqtk" pub -p "$port" -t demo/sensor/temp -m 21.5 -q 1 -r
echo "\$ echo '{\"door\":\"open\"}' | mqtk pub -p $port -t demo/sensor/door -s -q 2 -r --content-type application/json"
printf '{"door":"open"}' | "$mqtk" pub -p "$port" -t demo/sensor/door -s -q 2 -r --content-type application/json

wait "$sub_pid"
echo
echo "what the subscriber received:"
sort "$tmp/received" | sed 's/^/  /'

# A short benchmark of mqtk's own broker, started in-process on a free port.
echo
echo "\$ mqtk bench --embedded --qos 0,1 --duration 1s --warmup 0.2s --rate 5000"
"$mqtk" bench --embedded --qos 0,1 --duration 1s --warmup 0.2s --rate 5000 --no-progress
