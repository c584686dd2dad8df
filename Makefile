# Circle: `make run` starts the server with its web client; `make test` installs what the tests need
# and runs them all.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run build test test-rust test-browser test-netns bench-netns lint fmt fmt-check clippy bench bench-chat bench-idle bench-voice

## Start the server (release build) on embedded defaults, with the web client served on :8080.
run:
	$(CARGO) build --release -p circle-server
	CIRCLE_CLIENT__SERVE_DIR=web-client ./target/release/circle $(ARGS)

build:
	$(CARGO) build --workspace --all-targets

## Everything CI checks: formatting, lints, and every test (Rust, then real Chromium).
test: fmt-check clippy test-rust test-browser test-netns

test-rust:
	tests/postgres/with-cluster.sh $(CARGO) test --workspace --all-targets

## Installs Debian's Chromium and playwright-core when missing, then drives whole meetings in it.
test-browser:
	tests/browser/run.sh

## Real Chromium on a small imitation of the internet (network namespaces: NAT, UDP blocked, only TCP
## 443 open, HTTPS with a test CA). Needs root; installs nftables, Chromium and the rest when missing.
test-netns:
	tests/netns/run.sh

## Join time over UDP, ICE-TCP and TURN/TLS, in real Chromium on the namespace test bed (root).
bench-netns:
	JOIN_RUNS=$${JOIN_RUNS:-10} tests/netns/run.sh join-time.bench.mjs

lint: fmt-check clippy

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

## Voice relay throughput (docs/BENCHMARKS.md, "Voice relay under load"): one room of 51, 50 and 200
## rooms of 10 with 2 speakers each, one room of 500 with 3 speakers; 10 s each, loopback only.
## VOICE_ARGS adds options to every run (e.g. VOICE_ARGS="--workers 1").
bench-voice:
	$(CARGO) build --release -p circle-server -p circle-bench
	ulimit -n 32768 2>/dev/null || true; \
	./target/release/circle-load voice --rooms 1 --size 51 --speakers 1 --seconds 10 $(VOICE_ARGS) && \
	./target/release/circle-load voice --rooms 50 --size 10 --speakers 2 --seconds 10 $(VOICE_ARGS) && \
	./target/release/circle-load voice --rooms 200 --size 10 --speakers 2 --seconds 10 $(VOICE_ARGS) && \
	./target/release/circle-load voice --rooms 1 --size 500 --speakers 3 --seconds 10 $(VOICE_ARGS)

## Benchmarks (docs/BENCHMARKS.md): release builds; the server runs as a child on a free loopback port.
bench: bench-chat bench-idle

bench-chat:
	$(CARGO) build --release -p circle-bench -p circle-server
	./target/release/circle-load chat --members 1000 --messages 200 --rate 10

bench-idle:
	$(CARGO) build --release -p circle-bench -p circle-server
	ulimit -n 32768 2>/dev/null || true; ./target/release/circle-load idle --sessions 10000

.PHONY: soak soak-short fuzz-long

## Soak (docs/ROBUSTNESS.md): 60 minutes of churn with voice against the release server and a canary
## meeting; prints server memory, descriptors and threads at quiet points and PASS/FAIL.
soak:
	$(CARGO) build --release -p circle-bench -p circle-server
	ulimit -n 32768 2>/dev/null || true; ./target/release/circle-load soak --minutes 60

## The same for 5 minutes (1 minute of warm-up), to check the soak itself works.
soak-short:
	$(CARGO) build --release -p circle-bench -p circle-server
	ulimit -n 32768 2>/dev/null || true; ./target/release/circle-load soak --minutes 5 --warmup-minutes 1

## The property tests (fuzz_wire, fuzz_room) for FUZZ_MINUTES each on one core, in batches of fresh
## random cases (docs/ROBUSTNESS.md).
FUZZ_MINUTES ?= 10
fuzz-long:
	$(CARGO) test --release --no-run -p circle-server --test fuzz_wire
	$(CARGO) test --release --no-run -p circle-room --test fuzz_room
	set -e; for t in "circle-server fuzz_wire 20000" "circle-room fuzz_room 1000"; do \
	  set -- $$t; end=$$((SECONDS + $(FUZZ_MINUTES) * 60)); batches=0; \
	  while [ $$SECONDS -lt $$end ]; do \
	    if ! PROPTEST_CASES=$$3 taskset -c 1 $(CARGO) test -q --release -p $$1 --test $$2 -- --test-threads 1 \
	        >target/fuzz-$$2.log 2>&1; then cat target/fuzz-$$2.log; exit 1; fi; \
	    batches=$$((batches + 1)); \
	  done; \
	  echo "$$2: $$batches batches of $$3 cases per property, $(FUZZ_MINUTES) min, no failure"; \
	done
