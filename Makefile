# mqtk: see README.md. `make test` is what CI runs.
GO      ?= go
BIN     ?= bin/mqtk
PREFIX  ?= /usr/local
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X mqtk/internal/cli.version=$(VERSION) -X mqtk/internal/cli.commit=$(COMMIT)

.PHONY: build install test demo docs perf-sub perf-conns perf-bench perf-broker perf-latency perf-instructions perf-shutdown perf-retain-clear clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mqtk

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/mqtk
	install -m 0644 docs/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 docs/man/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	cd third_party/mochi-server && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# A broker on a free loopback port, a subscriber, three messages, and what arrived.
demo: build
	@./scripts/demo.sh $(BIN)

# Regenerate docs/commands, docs/man and completions/ from the command tree.
docs:
	$(GO) run ./cmd/docgen .

# Can mqtk sub keep up with mosquitto_sub? Side by side on mosquitto and on
# mqtk's broker; N, SIZE and RUNS are read from the environment.
perf-sub: build
	./scripts/perf-sub.sh $(BIN)

# Memory per idle connection, mqtk broker against mosquitto; N and RUNS
# from the environment.
perf-conns: build
	./scripts/perf-conns.sh $(BIN)

# Can mqtk bench drive mosquitto to its limit, and what does it cost? RUNS
# and DURATION from the environment.
perf-bench: build
	./scripts/perf-bench.sh $(BIN)

# mqtk's broker against mosquitto under the same mqtk bench loads: QoS 0
# 1->1 and 1->10, QoS 1, p99 at 1,000 msg/s, and beside a stalled subscriber.
perf-broker: build
	./scripts/perf-broker.sh $(BIN)

# Where the end-to-end latency at 1,000 msg/s goes (load generator,
# broker residence, subscriber), read off a tcpdump capture on lo, mqtk's
# broker beside mosquitto; needs tcpdump and root. RUNS, DURATION, QOS from
# the environment.
perf-latency: build
	./scripts/perf-latency.sh $(BIN)

# User-space instructions per message (callgrind), mqtk's broker against
# mosquitto: a count that a noisy machine does not change. N, RATE and QOS
# from the environment.
perf-instructions: build
	./scripts/perf-instructions.sh $(BIN)

# Time from SIGTERM to exit of mqtk broker --persist with 1,000 clients, a
# stalled subscriber, silent sockets and queued messages; N and RUNS from
# the environment.
perf-shutdown: build
	./scripts/perf-shutdown.sh $(BIN)

# How long mqtk retain-clear takes to clear N retained topics, on mosquitto
# and on mqtk's broker; N, RUNS and QUIET from the environment.
perf-retain-clear: build
	./scripts/perf-retain-clear.sh $(BIN)

clean:
	rm -rf bin
