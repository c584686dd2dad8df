# Circle: `make run` starts the server with its web client; `make test` installs what the tests need
# and runs them all.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run build test test-rust test-browser test-netns lint fmt fmt-check clippy bench bench-chat bench-idle bench-voice

## Start the server (release build) on embedded defaults, with the web client served on :8080.
run:
	$(CARGO) build --release -p circle-server
	CIRCLE_CLIENT__SERVE_DIR=web-client ./target/release/circle $(ARGS)

build:
	$(CARGO) build --workspace --all-targets

## Everything CI checks: formatting, lints, and every test (Rust, then real Chromium).
test: fmt-check clippy test-rust test-browser test-netns

test-rust:
	$(CARGO) test --workspace --all-targets

## Installs Debian's Chromium and playwright-core when missing, then drives whole meetings in it.
test-browser:
	tests/browser/run.sh

## Real Chromium on a small imitation of the internet (network namespaces: NAT, UDP blocked, only TCP
## 443 open, HTTPS with a test CA). Needs root; installs nftables, Chromium and the rest when missing.
test-netns:
	tests/netns/run.sh

lint: fmt-check clippy

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

## Voice relay: one speaker to 10 and 50 listeners over real WebRTC (docs/BENCHMARKS.md).
bench-voice:
	$(CARGO) build --release -p circle-server -p circle-tests --bin circle --bin circle-voice-load
	target/release/circle-voice-load --listeners 10 --seconds 10
	target/release/circle-voice-load --listeners 50 --seconds 10

## Benchmarks (docs/BENCHMARKS.md): release builds; the server runs as a child on a free loopback port.
bench: bench-chat bench-idle

bench-chat:
	$(CARGO) build --release -p circle-bench -p circle-server
	./target/release/circle-load chat --members 1000 --messages 200 --rate 10

bench-idle:
	$(CARGO) build --release -p circle-bench -p circle-server
	ulimit -n 32768 2>/dev/null || true; ./target/release/circle-load idle --sessions 10000
