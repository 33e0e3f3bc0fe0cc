// Package bench is the measuring side of `mqtk bench`: the header every
// benchmark payload carries, the per-subscriber tracker of loss, duplicates
// and order, latency histograms (HdrHistogram), the report as a table, NDJSON
// and CSV, and the --assert expressions CI pipelines check. The runner that
// connects clients and moves messages lives in internal/cli (bench.go).
package bench

import "time"

// HeaderSize is the length of the header at the start of every benchmark
// payload; --size must be at least this.
//
// Layout, big-endian:
//
//	0..3   magic "mqtk"
//	4..7   run: a random number per run and QoS level; a message with another
//	       run is foreign (a retained leftover, another benchmark) and ignored
//	8..11  publisher index
//	12..19 sequence number, 0, 1, 2... per publisher in the measured phase
//	       (warm-up messages have their own sequence)
//	20..27 send time in nanoseconds since the run's epoch (monotonic clock);
//	       with --rate it is the intended send time, not the actual one
//	28     flags: bit 0 = warm-up message (not counted in results)
const HeaderSize = 29

// Header is the decoded payload header.
type Header struct {
	Run       uint32
	Publisher uint32
	Seq       uint64
	Sent      int64 // ns since the run's epoch
	Warmup    bool
}

// Config is every effective setting of a run, printed as the first NDJSON
// line ({"type":"config",...}) with --json.
type Config struct {
	Broker      string        // URL of the broker, e.g. mqtt://127.0.0.1:1883
	Embedded    bool          // the broker is mqtk's own, started in-process
	Protocol    string        // "5", "3.1.1" or "3.1"
	QoS         []byte        // one run per level, in order
	Publishers  int           //
	Subscribers int           //
	Messages    int           // per publisher; 0 when Duration bounds the run
	Duration    time.Duration // 0 when Messages bounds the run
	Rate        float64       // total messages per second across publishers; 0 = as fast as possible
	Size        int           // payload bytes
	Inflight    int           // QoS 1/2 messages in flight per publisher
	Topic       string        // the pattern, with %i and %c
	Warmup      time.Duration //
	Retain      bool          //
	Version     string        // mqtk's version
}

// Latency is a summary of one histogram, in microseconds.
type Latency struct {
	Count                    int64 // samples; 0 means there is nothing to summarise
	P50, P90, P99, P999, Max float64
}

// Result is the outcome of one QoS level.
type Result struct {
	QoS         byte
	Publishers  int
	Subscribers int
	Size        int
	Sent        uint64 // publishes written in the measured phase
	Acked       uint64 // PUBACK/PUBCOMP with a success code (QoS 0: = Sent)
	Received    uint64 // distinct deliveries, summed over subscribers
	Lost        uint64 // expected deliveries (Sent x Subscribers) never received
	Duplicates  uint64 // deliveries of a message a subscriber already had
	OutOfOrder  uint64 // deliveries with a lower sequence than one already seen from that publisher
	// Unsent are measured publishes planned (by --messages, or by the
	// --rate schedule until the end of --duration) and never written,
	// because the run was cut short: a publisher's connection was lost or
	// refused a publish, the broker stalled, a signal stopped the run.
	// Closed-loop --duration runs plan no count: 0. With --rate, also what
	// was still due when --duration ended with the publishers behind the
	// schedule (Behind).
	Unsent   uint64
	Behind   bool // --rate: publishers were behind the schedule when --duration ended
	Duration time.Duration
	// Rates are over Duration, the measured phase.
	PublishRate float64 // Sent per second
	ReceiveRate float64 // Received per second
	PublishMBs  float64 // Sent x Size per second, in MB (10^6 bytes)
	ReceiveMBs  float64
	Ack         Latency // publish written -> PUBACK (QoS 1) or PUBCOMP (QoS 2); Count 0 for QoS 0
	E2E         Latency // send time in the header -> delivery to a subscriber; Count 0 without subscribers
	Connect     Latency // CONNECT written -> CONNACK, every client of the run
	// Errors counts what went wrong, by kind: "disconnect", "publish rejected:
	// not authorized (0x87)", "connect", "timeout"... Never nil in a report.
	Errors map[string]uint64
	// Failures are the first error of each kind counted in Errors, in the
	// order of the kinds' names; nil when nothing went wrong. A run with
	// any is a failed run (mqtk bench exits non-zero).
	Failures    []error
	Interrupted bool // the run was stopped by a signal; figures are partial
}
