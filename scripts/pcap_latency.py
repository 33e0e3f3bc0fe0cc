#!/usr/bin/env python3
"""pcap_latency.py PCAP BROKER-PORT: where a benchmark message's end-to-end
latency goes, from a capture on the loopback interface (tcpdump -i lo -w,
nanosecond timestamps) of one `mqtk bench` run against a broker on
BROKER-PORT. Used by perf-latency.sh.

A packet on lo is captured inside the write that sends it, so for each
message of the benchmark (its payload header: "mqtk", run, publisher,
sequence, scheduled send time), warm-up messages left out, three intervals can be read off the wire:

  late   the publisher's PUBLISH on the wire, less its scheduled send time,
         less the least such difference in the run (the clocks differ by a
         constant): the load generator's own lateness
  resid  the broker's PUBLISH to the subscriber, less the publisher's
         PUBLISH: the broker's residence time, its wake-up included
  react  (QoS 1 and 2) the subscriber's PUBACK or PUBREC, less the
         broker's PUBLISH: the load generator's subscriber waking up,
         handling and acknowledging the message

Prints one line: the count of messages seen both ways and, for each
interval, p50, p90 and p99 in microseconds. Only IPv4 TCP on lo, and MQTT
packets as mqtk bench sends them (MQTT 5 or 3.1.1) are understood.
"""
import struct
import sys


def varint(b, i):
    """The MQTT variable byte integer at b[i:]: (value, next index), or
    (None, i) if b ends inside it."""
    v, m = 0, 1
    while i < len(b):
        c = b[i]
        i += 1
        v += (c & 127) * m
        m *= 128
        if c < 128:
            return v, i
    return None, i


def frames(path):
    """(time in ns, IPv4 packet) for each frame of the capture."""
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        if magic not in (0xA1B2C3D4, 0xA1B23C4D):
            sys.exit(f"pcap_latency: {path}: not a little-endian pcap file")
        scale = 1 if magic == 0xA1B23C4D else 1000
        link = struct.unpack("<I", head[20:24])[0]
        skip = {1: 14, 113: 16}.get(link)  # Ethernet (lo), Linux cooked
        if skip is None:
            sys.exit(f"pcap_latency: {path}: link type {link} not understood")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, orig = struct.unpack("<IIII", rec)
            data = f.read(incl)
            if incl != orig:
                sys.exit("pcap_latency: packets cut short: capture with -s 0")
            yield sec * 1_000_000_000 + frac * scale, data[skip:]


def main():
    path, bport = sys.argv[1], int(sys.argv[2])
    streams = {}  # (sport, dport) -> bytes not yet a whole MQTT packet
    sent_in = {}  # message key -> (time on the wire to the broker, scheduled time)
    sent_out = {}  # message key -> (time on the wire to a subscriber, its port, packet id)
    acks = {}  # (subscriber port, packet id) -> time of its PUBACK/PUBREC
    for t, ip in frames(path):
        if not ip or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        tcp = ip[(ip[0] & 15) * 4:]
        sport, dport = struct.unpack(">HH", tcp[:4])
        body = tcp[(tcp[12] >> 4) * 4:]
        if not body:
            continue
        b = streams.get((sport, dport), b"") + body
        while len(b) >= 2:
            n, i = varint(b, 1)
            if n is None or i + n > len(b):
                break
            first, pk, b = b[0], b[i:i + n], b[i + n:]
            kind, qos = first >> 4, (first >> 1) & 3
            if kind == 3:  # PUBLISH
                j = 2 + struct.unpack(">H", pk[:2])[0]
                pid = None
                if qos:
                    pid = struct.unpack(">H", pk[j:j + 2])[0]
                    j += 2
                payload = pk[j:]
                if payload[:4] != b"mqtk":  # MQTT 5: properties come first
                    plen, j = varint(pk, j)
                    payload = pk[j + (plen or 0):]
                if payload[:4] != b"mqtk" or len(payload) < 29 or payload[28] & 1:
                    continue  # not a benchmark message, or a warm-up one
                run, pub, seq, sched = struct.unpack(">IIQQ", payload[4:28])
                key = (run, pub, seq, payload[28])
                if dport == bport:
                    sent_in[key] = (t, sched)
                else:
                    sent_out[key] = (t, dport, pid)
            elif kind in (4, 5) and dport == bport:  # PUBACK, PUBREC
                acks[(sport, struct.unpack(">H", pk[:2])[0])] = t
        streams[(sport, dport)] = b
    late, resid, react = [], [], []
    for key, (t1, sched) in sent_in.items():
        if key not in sent_out:
            continue
        t2, port, pid = sent_out[key]
        late.append(t1 - sched)
        resid.append(t2 - t1)
        if (port, pid) in acks:
            react.append(acks[(port, pid)] - t2)
    if not resid:
        sys.exit("pcap_latency: no benchmark message seen both ways")
    least = min(late)
    late = [x - least for x in late]

    def pct(v, p):
        v = sorted(v)
        return v[min(len(v) - 1, int(p / 100 * len(v)))] / 1000

    out = [f"n={len(resid)}"]
    for name, v in (("late", late), ("resid", resid), ("react", react)):
        if v:
            out.append(f"{name} {pct(v, 50):.0f}/{pct(v, 90):.0f}/{pct(v, 99):.0f}")
    print(" ".join(out))


if __name__ == "__main__":
    main()
