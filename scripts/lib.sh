# Shared by the perf scripts: source it, don't run it.

# free_port prints a free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT waits (up to 10 s) until something accepts on 127.0.0.1:PORT.
wait_port() {
  for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "$(basename "$0"): nothing listens on $1" >&2
  exit 1
}

# median prints the median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# mosquitto_on PORT LOG [LINE...]: starts mosquitto ($mosquitto) in the
# background on 127.0.0.1:PORT with anonymous clients allowed, the LINEs
# added to its configuration and its defaults otherwise (its pid in $!),
# its configuration in LOG.conf, its log in LOG.
mosquitto_on() {
  local port=$1 log=$2; shift 2
  { printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port"; [ $# = 0 ] || printf '%s\n' "$@"; } > "$log.conf"
  "$mosquitto" -c "$log.conf" 2>"$log" &
}

# warm MQTK DURATION PORT...: each broker gets DURATION of QoS 0 at full
# speed, unmeasured, before measuring (0: none). A freshly started mqtk
# broker's heap grows into fresh pages until its first collection;
# a broker that has run a while is past that.
warm() {
  local mqtk=$1 d=$2 p; shift 2
  [ "$d" != 0 ] || return 0
  for p in "$@"; do
    "$mqtk" bench -p "$p" --no-progress --duration "$d" --warmup 0s --qos 0 > /dev/null
  done
}
