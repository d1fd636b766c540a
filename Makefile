# trace-inject: every target installs what it needs, idempotently, on a fresh Debian 12 machine.
SHELL := /bin/bash
ROOT  := $(CURDIR)
TOOLS := $(ROOT)/.tools
ENVOY := $(TOOLS)/venv/bin/envoy
WASM  := dist/trace_inject.wasm
export ENVOY_BIN := $(ENVOY)

.PHONY: all build run traces test lint unit e2e e2e-matrix deps envoy clean help

all: build

help:
	@echo "make build   - compile the filter to $(WASM) (wasm32-wasip1, size-optimised)"
	@echo "make run     - the filter in a local Envoy, with an echo upstream and a trace collector"
	@echo "make traces  - print the traces the local collector holds, as trees"
	@echo "make test    - fmt, clippy, unit tests, e2e tests against a real Envoy"
	@echo "make e2e-matrix [ENVOY_VERSIONS=\"1.37.0 1.40.0\"] - the e2e tests on each Envoy version"

# Only the filter's sources make the .wasm stale.
$(WASM): Cargo.toml Cargo.lock $(shell find src -name '*.rs') scripts/build-wasm.sh
	scripts/build-wasm.sh trace-inject $(WASM)

build: $(WASM)

envoy:
	scripts/install-envoy.sh

deps: envoy

devtools:
	cargo build -q --locked --release -p trace-inject-devtools

run: build envoy devtools
	scripts/run.sh

traces: devtools
	@target/release/trace-inject-devtools traces $(if $(TRACE),--id $(TRACE))

lint: build
	scripts/lint.sh

unit:
	cargo test -q --locked --workspace --lib --bins

e2e: build envoy
	cargo test -q --locked --workspace --test "*" -- --test-threads=4

# The e2e suite against each Envoy minor Istio ships (each pip-installed into .tools/envoy-X).
ENVOY_VERSIONS ?= 1.36.2 1.37.0 1.38.2 1.39.3 1.40.0
e2e-matrix: build
	scripts/e2e-matrix.sh $(ENVOY_VERSIONS)

test: lint unit e2e test-wasmplugin test-oci

clean:
	cargo clean; rm -rf dist

# --- Shipping: OCI images of the filter for Istio, and their tests ---------------------------
# make image                     dist/oci: compat image :VERSION + Wasm OCI artifact :VERSION-wasm
# make push REGISTRY=host[:port][/path]   both, digests preserved (skopeo; `skopeo login` first)
# make test-oci                  registry + push + pull by digest + the pulled module in Envoy
# make test-wasmplugin           wasm-plugin.yaml: Istio CRD (strict) + the filter's config parser
.PHONY: image push test-oci test-wasmplugin
image: build
	scripts/image.sh $(WASM)

push: image
	@test -n "$(REGISTRY)" || { echo "usage: make push REGISTRY=host[:port][/path]" >&2; exit 2; }
	scripts/push.sh "$(REGISTRY)"

test-oci: build envoy
	tests/oci_e2e.sh

test-wasmplugin:
	tests/wasmplugin/test.sh

# --- Fast and unbreakable: benchmark, instruction counts, size, fuzzing -----------------------
# make bench   one run, side by side: Envoy (1 worker, core 0) + wrk (core 1) for the router, a
#              no-op proxy-wasm filter, trace-inject (inject / propagate / repair) and a Lua
#              filter; callgrind instructions per request; .wasm sizes -> bench/results.md
#              (about 4 minutes: run it on an otherwise idle machine)
# make fuzz    tests/fuzz_parsers.rs with FUZZ_CASES (200000) cases per property
#              (every parser and the decision invariants)
NOOP_WASM  := dist/bench_noop.wasm
FUZZ_CASES ?= 200000
.PHONY: bench fuzz
$(NOOP_WASM): Cargo.toml Cargo.lock $(wildcard benches/noop/Cargo.toml benches/noop/src/*.rs) scripts/build-wasm.sh
	scripts/build-wasm.sh trace-inject-bench-noop $(NOOP_WASM)

bench: build envoy $(NOOP_WASM)
	cargo build -q --locked --release -p trace-inject-percall
	WASM=$(WASM) NOOP_WASM=$(NOOP_WASM) bench/run.sh

fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) cargo test -q --locked --test fuzz_parsers
