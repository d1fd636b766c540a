# trace-inject: every target installs what it needs, idempotently, on a fresh Debian 12 machine.
SHELL := /bin/bash
ROOT  := $(CURDIR)
TOOLS := $(ROOT)/.tools
ENVOY := $(TOOLS)/venv/bin/envoy
WASM  := dist/trace_inject.wasm
export ENVOY_BIN := $(ENVOY)

.PHONY: all build run traces test lint unit e2e deps envoy clean help

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

deps: envoy

devtools:
	cargo build -q --locked --release -p trace-inject-devtools

run: build envoy devtools
	scripts/run.sh

traces: devtools
	@target/release/trace-inject-devtools traces $(if $(TRACE),--id $(TRACE))

lint:
	rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || timeout 120 rustup component add rustfmt clippy
	cargo fmt --all -- --check
	cargo clippy -q --locked --workspace --all-targets -- -D warnings
	cargo clippy -q --locked -p trace-inject --lib --target wasm32-wasip1 -- -D warnings

unit:
	cargo test -q --locked --workspace --lib --bins

e2e: build envoy
	cargo test -q --locked --test '*' -- --test-threads=4

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
