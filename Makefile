# trace-inject: every target installs what it needs, idempotently, on a fresh Debian 12 machine.
SHELL := /bin/bash
ROOT  := $(CURDIR)
TOOLS := $(ROOT)/.tools
ENVOY := $(TOOLS)/venv/bin/envoy
WASM  := dist/trace_inject.wasm
export ENVOY_BIN := $(ENVOY)

.PHONY: all build run traces test lint unit e2e deps envoy gohost oracle clean help

all: build

help:
	@echo "make build   - compile the filter to $(WASM) (wasm32-wasip1, size-optimised)"
	@echo "make run     - the filter in a local Envoy, with an echo upstream and a trace collector"
	@echo "make traces  - print the traces the local collector holds, as trees"
	@echo "make test    - fmt, clippy, unit tests, e2e tests against a real Envoy"

# Only the filter's sources make the .wasm stale.
$(WASM): Cargo.toml Cargo.lock $(shell find src -name '*.rs') scripts/build-wasm.sh
	scripts/build-wasm.sh trace-inject $(WASM)

build: $(WASM)

envoy:
	scripts/install-envoy.sh

deps: envoy gohost oracle

# A real Go net/http server (tests/gohost) in front of the test collector: Go's Host-header check,
# as Jaeger and the OpenTelemetry Collector apply it (tests/export_mesh.rs).
gohost:
	scripts/build-gohost.sh

# OpenTelemetry's Python propagators: the independent reader the e2e tests check the output with.
oracle:
	scripts/install-oracle.sh

devtools:
	cargo build -q --locked --release -p trace-inject-devtools

run: build envoy devtools
	scripts/run.sh

traces: devtools
	@target/release/trace-inject-devtools traces $(if $(TRACE),--id $(TRACE))

lint: build
	scripts/lint.sh

# Tests that need no Envoy: every unit test and the property tests (tests/<name>.rs listed here).
PURE_TESTS := fuzz_parsers fuzz_conformance otlp_schema
E2E_TESTS  := $(filter-out $(PURE_TESTS),$(basename $(notdir $(wildcard tests/*.rs tools/devtools/tests/*.rs))))

unit:
	cargo test -q --locked --workspace --lib --bins $(addprefix --test ,$(PURE_TESTS))

e2e: build envoy gohost oracle
	cargo test -q --locked --workspace $(addprefix --test ,$(E2E_TESTS)) -- --test-threads=4

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
#              no-op proxy-wasm filter, the job floor (bench/floor), trace-inject (inject, default
#              config, propagate, repair, export), a Lua filter, and a tracer hop (Zipkin at 100 %)
#              without and with trace-inject; callgrind instructions per request; .wasm sizes ->
#              bench/results.md (about 7 minutes: run it on an otherwise idle machine). Knobs:
#              ROUNDS=3 DURATION=10 CONFIGS="router noop floor ..." (see bench/run.sh)
# make fuzz    tests/fuzz_parsers.rs with FUZZ_CASES (200000) cases per property
#              (every parser and the decision invariants)
NOOP_WASM  := dist/bench_noop.wasm
FLOOR_WASM := dist/bench_floor.wasm
FUZZ_CASES ?= 200000
.PHONY: bench fuzz mutants
$(NOOP_WASM): Cargo.toml Cargo.lock $(wildcard bench/noop/Cargo.toml bench/noop/src/*.rs) scripts/build-wasm.sh
	scripts/build-wasm.sh trace-inject-bench-noop $(NOOP_WASM)

$(FLOOR_WASM): Cargo.toml Cargo.lock $(wildcard bench/floor/Cargo.toml bench/floor/src/*.rs) scripts/build-wasm.sh
	scripts/build-wasm.sh trace-inject-bench-floor $(FLOOR_WASM)

bench: build envoy devtools $(NOOP_WASM) $(FLOOR_WASM)
	cargo build -q --locked --release -p trace-inject-percall
	WASM=$(WASM) NOOP_WASM=$(NOOP_WASM) FLOOR_WASM=$(FLOOR_WASM) bench/run.sh

fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) cargo test -q --locked --test fuzz_parsers --test fuzz_conformance

# make mutants  cargo-mutants over the filter crate with the native tests (unit, property, OTLP
#               schema): caught / missed / unviable per mutant in mutants.out/. Not part of make
#               test (10-30 minutes). Knobs: MUTANTS_JOBS=1 MUTANTS_TIMEOUT=60 MUTANTS_ARGS=...
MUTANTS_JOBS    ?= 1
MUTANTS_TIMEOUT ?= 60
mutants:
	@command -v cargo-mutants >/dev/null 2>&1 || cargo install --locked cargo-mutants
	# -C: cargo arguments for both the build and the test run (only the native test targets are
	# built; repeating one after `--` would make cargo refuse the run, counted as "caught").
	cargo mutants -p trace-inject --jobs $(MUTANTS_JOBS) --timeout $(MUTANTS_TIMEOUT) $(MUTANTS_ARGS) \
	  -C --lib $(addprefix -C --test=,$(PURE_TESTS))
