package bench

// Doc documents what mqtk bench reports: the NDJSON lines, the CSV columns,
// the table's measurements and the --assert language. It is the help topic
// `mqtk help bench-output` and is generated into docs/. Keep it true to
// report.go and assert.go; schema_test.go checks that every key and column
// is named here.
const Doc = `mqtk bench runs once per QoS level and reports each run as a table for
people, as NDJSON (--json) or as CSV. Fields and columns are only ever added.

What is measured

  ack         publish written to PUBACK (QoS 1) or PUBCOMP (QoS 2) from the
              broker, per message; QoS 0 has none
  end-to-end  send time in the payload's header to delivery at a subscriber,
              per delivery; with --rate the send time is the scheduled one,
              so a publisher that falls behind shows as latency
  connect     dial (TCP, TLS, WebSocket) to CONNACK, for every client of the run

Percentiles come from HdrHistogram (1 ns to 1 hour, 3 significant digits;
values outside are counted at the bound), merged across clients, never
averaged. Each percentile is the highest value within its 3 significant
digits. Warm-up messages are not counted.
A duplicate is a delivery of a message a subscriber already had; out of
order is a new message with a lower sequence than one the subscriber already
had from that publisher; lost is an expected delivery (sent x subscribers)
that never came; unsent is a measured message planned and never sent,
because the run was cut short or, with --rate, because it was still due
when --duration ended with the publishers more than 100ms behind the
schedule (a rate above what the broker or the machine takes: the run does
not go on past --duration to catch up).

A run fails when anything is counted in its errors: a publish or delivery
connection lost, a publish rejected, a broker that stalled (nothing moved
for 10 seconds, plus the gap between two messages of --rate), an
acknowledgement still missing when the drain ended. The report is printed
in full all the same; then mqtk bench names the cause on stderr, runs no
further QoS level and exits non-zero (see 'mqtk help exit-codes' and 'mqtk
bench --help').

NDJSON (--json)

One JSON object per line: first the run's settings, then one result per QoS
level, in the order they ran.

  {"type":"config"}
  type                "config"
  broker              URL of the broker, e.g. "mqtt://127.0.0.1:1883"
  embedded            true when the broker is mqtk's own, started in-process
  protocol            the MQTT version the clients used: "5", "3.1.1" or "3.1"
                      (without -V, "3.1.1" or "3.1" when the broker refused 5)
  qos                 array of the QoS levels run, in order, e.g. [0,1,2]
  publishers          number of publishing clients
  subscribers         number of subscribing clients
  messages            messages per publisher; 0 when duration_s bounds the run
  duration_s          seconds of the measured phase; 0 when messages bounds it
  rate                messages per second across publishers; 0 = no limit
  size                payload bytes
  inflight            QoS 1 and 2 messages in flight per publisher, as asked
                      (--inflight): the broker's Receive Maximum may allow
                      fewer, and with MQTT 3.1.1 or 3.1 at most 20 QoS 2
                      messages are in flight
  topic               the topic pattern, with %i and %c
  warmup_s            seconds of warm-up before the measured phase
  retain              true when messages are published retained
  version             mqtk's version

  {"type":"result"}
  type                "result"
  qos                 0, 1 or 2
  publishers          number of publishing clients
  subscribers         number of subscribing clients
  size                payload bytes
  sent                publishes written in the measured phase
  acked               PUBACK/PUBCOMP with a success code (QoS 0: = sent)
  received            distinct deliveries, summed over subscribers
  lost                expected deliveries (sent x subscribers) never received
  duplicates          deliveries of a message a subscriber already had
  out_of_order        deliveries with a lower sequence than one already seen
                      from that publisher
  duration_s          seconds from the start of the measured phase to the
                      last measured publish written, 3 decimals
  publish_rate        sent / duration_s, 1 decimal
  receive_rate        received per second, from the start of the measured
                      phase to the last measured delivery, 1 decimal
  publish_mb_s        publish_rate x size, in MB (10^6 bytes), 3 decimals
  receive_mb_s        receive_rate x size, in MB, 3 decimals
  ack_latency_us      ack latency (see above); absent at QoS 0
  e2e_latency_us      end-to-end latency; absent without subscribers
  connect_latency_us  connect latency (count 0 when no client connected)
  errors              object: the count of each kind of error, {} when none,
                      e.g. {"connection lost":2,
                      "publish rejected: not authorized (0x87)":3}
  unsent              measured messages planned but never sent because the
                      run was cut short (a lost connection, a rejection, a
                      stall, a signal): the rest of --messages, or of the
                      --rate schedule to the end of --duration; with --rate
                      also what was still due at the end of --duration
                      (errors then empty: the publishers fell behind);
                      always 0 in a closed-loop --duration run, which plans
                      no count
  interrupted         true when a signal stopped the run and the figures are
                      partial; absent otherwise

  A latency object is in microseconds, 3 decimals:
  p50, p90, p99, p999  the 50th, 90th, 99th and 99.9th percentiles
  max                  the highest sample
  count                the number of samples

Example:

  {"type":"result","qos":1,"publishers":10,"subscribers":1,"size":100,"sent":100000,"acked":100000,"received":100000,"lost":0,"duplicates":0,"out_of_order":0,"duration_s":4.212,"publish_rate":23741.7,"receive_rate":23741.7,"publish_mb_s":2.374,"receive_mb_s":2.374,"ack_latency_us":{"p50":402.175,"p90":712.191,"p99":1456.127,"p999":2961.407,"max":5402.623,"count":100000},"e2e_latency_us":{"p50":430.079,"p90":760.319,"p99":1530.879,"p999":3082.239,"max":5672.959,"count":100000},"connect_latency_us":{"p50":812.031,"p90":1402.879,"p99":1601.535,"p999":1601.535,"max":1601.535,"count":11},"errors":{},"unsent":0}

CSV

--csv FILE writes a header row, then one row per QoS level, with these columns:

  qos, publishers, subscribers, size, sent, acked, received, lost,
  duplicates, out_of_order, duration_s, publish_rate, receive_rate,
  publish_mb_s, receive_mb_s    as in the NDJSON result
  ack_p50_us, ack_p90_us, ack_p99_us, ack_p999_us, ack_max_us
  e2e_p50_us, e2e_p90_us, e2e_p99_us, e2e_p999_us, e2e_max_us
  connect_p50_us, connect_p90_us, connect_p99_us, connect_p999_us,
  connect_max_us                latencies in microseconds; empty when the
                                measurement has no samples
  errors                        the total count of errors of every kind
  interrupted                   true or false
  unsent                        as in the NDJSON result

Table

One row per QoS level with its time, the counts (sent, acked, received, lost,
dup, ooo) and the rates (pub msg/s, pub MB/s, recv msg/s, recv MB/s). A *
after the QoS level marks a run a signal interrupted: its figures are
partial. Then one latency row per QoS level and measurement (ack (PUBACK),
ack (PUBCOMP), end-to-end, connect) with p50, p90, p99, p99.9, max and the
number of samples, in µs below 1 ms, ms below 1 s and s above, to 3
significant digits. Last, the errors of each run by kind, and its unsent
messages if it was cut short.

--assert EXPR

Each --assert is checked against the results; mqtk bench fails if one does
not hold. EXPR is

  [qosN.]METRIC OP VALUE

with spaces allowed anywhere.

  qosN     check the run of that QoS level only (it must have been run);
           without it, EXPR must hold for every QoS level run
  METRIC   sent, acked, received, lost, duplicates, out_of_order, unsent,
           errors (the total), duration_s, publish_rate, receive_rate,
           publish_mb_s, receive_mb_s; or a latency: ack.P, e2e.P or
           connect.P with P one of p50, p90, p99, p999 (or p99.9), max
  OP       <  <=  >  >=  ==  !=
  VALUE    a number; underscores may group digits (50_000); k or M multiply
           counts and rates by 1,000 or 1,000,000 (50k). duration_s takes
           seconds, or a duration with a unit. A latency needs a unit: ns,
           us (or µs), ms or s, e.g. 20ms, 1.5ms, 250us.

A latency without samples (ack at QoS 0, e2e without subscribers) cannot be
checked: that is an error, as is naming a QoS level that was not run.

Examples:

  --assert lost==0                      nothing lost, at every QoS level
  --assert 'qos1.e2e.p99 < 20ms'        99% of QoS 1 deliveries within 20 ms
  --assert qos0.receive_rate>50k        QoS 0 delivered over 50,000 messages/s
  --assert 'errors == 0' --assert 'qos2.ack.max<=1s'

A failed assertion prints the value it saw:

  qos1.e2e.p99 = 23.4ms, wanted < 20ms`
