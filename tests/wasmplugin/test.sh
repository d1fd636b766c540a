#!/usr/bin/env bash
# wasm-plugin.yaml is a WasmPlugin Istio accepts and a configuration the filter accepts:
#   - Istio's CRD schema, strict (validate.mjs: schema + unknown fields + name + target rules);
#   - its pluginConfig, as JSON, through the filter's own parser (check-config);
#   - pluginConfig shows every field of src/config.rs (set to the default, or commented out);
#   - the commented alternatives (targetRefs instead of selector, workload overrides) are valid
#     when uncommented;
#   - deliberately broken copies are rejected, each by the check that should catch it;
#   - `make check-plugin FILE=...` as a user runs it: the shipped file passes, a missing FILE gets
#     the usage, a bad pluginConfig field and a bad schema field are each named;
#   - every Istio manifest the README and docs/ show (WasmPlugin, Telemetry, VirtualService,
#     EnvoyFilter) is valid, strictly, and a WasmPlugin's pluginConfig passes check-config.
# Prints PASS/FAIL per check and a closing "N passed, N failed" line; exits 1 on any failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/lib.sh"
cd "$ROOT"

PASSED=0 FAILED=0
TMP="$(mktemp -d /tmp/trace-inject-wasmplugin.XXXXXX)"
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
finish() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ]; then fail "aborted (exit $rc) before all checks ran"; fi
  [ "$FAILED" -eq 0 ] && rm -rf "$TMP" || echo "files kept in $TMP"
  echo "wasmplugin: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ] && exit 0 || exit 1
}
trap finish EXIT
trap 'exit 130' INT TERM HUP PIPE
trap 'fail "setup: line $LINENO: $BASH_COMMAND"' ERR

YAML="$ROOT/wasm-plugin.yaml"
validate() { node "$ROOT/tests/wasmplugin/validate.mjs" "$@"; }

scripts/install-node-tools.sh
cargo build -q --locked --bin check-config
CHECK_CONFIG="${CARGO_TARGET_DIR:-$ROOT/target}/debug/check-config"

# expect OUTCOME NAME CMD...: OUTCOME is accept or reject; CMD's output is shown on a surprise.
expect() {
  local want="$1" name="$2" out rc=0
  shift 2
  out="$("$@" 2>&1)" || rc=$?
  out="${out//$TMP\//}"
  out="${out//$ROOT\//}"
  if { [ "$want" = accept ] && [ "$rc" -eq 0 ]; } || { [ "$want" = reject ] && [ "$rc" -eq 1 ]; }; then
    pass "$name${out:+ -- $(tail -1 <<<"$out")}"
  else
    fail "$name (exit $rc)"; sed 's/^/    /' <<<"$out"
  fi
}
# variant NAME SED_ARGS...: a copy of wasm-plugin.yaml edited by sed; fails if sed changed nothing.
variant() {
  local name="$1"
  shift
  sed "$@" "$YAML" > "$TMP/$name.yaml"
  if cmp -s "$YAML" "$TMP/$name.yaml"; then
    echo "variant $name: the edit did not apply (wasm-plugin.yaml changed shape?)" >&2
    return 1
  fi
  echo "$TMP/$name.yaml"
}
plugin_config_ok() { # FILE: its pluginConfig, extracted as JSON, through the filter's parser
  validate plugin-config "$1" > "$TMP/plugin-config.json" && "$CHECK_CONFIG" "$TMP/plugin-config.json"
}

# --- the shipped file --------------------------------------------------------------------------
expect accept "wasm-plugin.yaml: WasmPlugin CRD schema, strict" validate check "$YAML"
expect accept "wasm-plugin.yaml: pluginConfig passes the filter's own parser (check-config)" plugin_config_ok "$YAML"
expect accept "wasm-plugin.yaml: pluginConfig shows every field of src/config.rs" validate documented "$YAML" src/config.rs
f="$(variant gateway -e '/^  selector:/,/^      app: /d' -e 's/^  # targetRefs:/  targetRefs:/' \
  -e 's/^  # - kind: Gateway/  - kind: Gateway/' -e 's/^  #   \(group\|name\): /    \1: /')"
expect accept "the commented targetRefs alternative (selector removed) is valid" validate check "$f"
f="$(variant overrides -e '/^    # workload:/,/^    #   pod:/{s/^    # workload:/    workload:/;s/^    #   \([a-z_]*\): /      \1: /}')"
expect accept "the commented workload overrides, uncommented, pass check-config" plugin_config_ok "$f"
# export is for hops without Envoy's tracer: uncommented together with tracer: none.
f="$(variant export -e 's/^    # tracer: auto/    tracer: none/' \
  -e '/^    # export:/,/^    #   timeout_ms:/{s/^    # export:/    export:/;s/^    #   \([a-z_]*\): /      \1: /}')"
expect accept "the commented export section, uncommented (tracer: none), passes check-config" plugin_config_ok "$f"

f="$(variant published -e "s|^  url: oci://.*|  url: oci://127.0.0.1:5000/team/trace-inject:0.1.0|" \
  -e "s|^  # sha256: .*|  sha256: $(printf '%064d' 0 | tr 0 a)|")"
expect accept "as published (README, Deploy to Istio: url and sha256 set): valid for Istio" validate check "$f"
expect accept "as published: pluginConfig passes check-config" plugin_config_ok "$f"

# --- broken copies: each must be rejected ------------------------------------------------------
f="$(variant typo-top -e 's/^  failStrategy:/  failstrategy:/')"
expect reject "broken: unknown field spec.failstrategy (strict check)" validate check "$f"
f="$(variant typo-nested -e 's/^    matchLabels:/    matchLabel:/')"
expect reject "broken: unknown field spec.selector.matchLabel (strict check)" validate check "$f"
f="$(variant typo-meta -e 's/^  namespace: default/  namespace: default\n  label: {app: x}/')"
expect reject "broken: unknown field metadata.label (strict check)" validate check "$f"
f="$(variant bad-enum -e 's/^  phase: AUTHN/  phase: FIRST/')"
expect reject "broken: phase FIRST, not an enum value (CRD schema)" validate check "$f"
f="$(variant bad-type -e 's/^  phase: AUTHN/  phase: AUTHN\n  priority: high/')"
expect reject "broken: priority \"high\", not an integer (CRD schema)" validate check "$f"
f="$(variant no-name -e '/^  name: trace-inject/d')"
expect reject "broken: no metadata.name" validate check "$f"
f="$(variant no-url -e '/^  url: oci:/d')"
expect reject "broken: no spec.url (CRD schema)" validate check "$f"
f="$(variant duplicate -e 's/^  phase: AUTHN/  phase: AUTHN\n  phase: STATS/')"
expect reject "broken: duplicate key spec.phase" validate check "$f"
f="$(variant both-targets -e 's/^  # targetRefs:/  targetRefs:/' -e 's/^  # - kind: Gateway/  - kind: Gateway/' \
  -e 's/^  #   \(group\|name\): /    \1: /')"
expect reject "broken: selector and targetRefs together (Istio's rule)" validate check "$f"
f="$(variant config-typo -e 's/^    new_trace_sampling:/    sampling:/')"
expect accept "broken pluginConfig field 'sampling': the CRD cannot see it (pluginConfig is free-form)" validate check "$f"
expect reject "broken pluginConfig field 'sampling': check-config rejects it" plugin_config_ok "$f"
f="$(variant config-value -e 's/^    # tracer: auto/    tracer: jaeger/')"
expect reject "broken pluginConfig value tracer: jaeger: check-config rejects it" plugin_config_ok "$f"

# --- make check-plugin, as a user runs it on their own file --------------------------------------
# says NAME PATTERN CMD...: CMD's output (stdout and stderr) contains PATTERN (grep -E); its exit
# status does not matter here (make answers 2 for any failed recipe): the verdict line says.
says() {
  local name="$1" pattern="$2" out
  shift 2
  out="$("$@" 2>&1)" || true
  out="${out//$TMP\//}"
  if grep -qE -- "$pattern" <<<"$out"; then
    pass "$name -- $(grep -E -m1 -- "$pattern" <<<"$out")"
  else
    fail "$name (no line matching: $pattern)"; sed 's/^/    /' <<<"$out"
  fi
}
check_plugin() { make -s --no-print-directory check-plugin "$@"; }
cp "$YAML" "$TMP/my-plugin.yaml"
says "make check-plugin FILE=my-plugin.yaml: the shipped file passes both checks" \
  '^check-plugin: my-plugin.yaml: valid \(1 WasmPlugin' check_plugin FILE="$TMP/my-plugin.yaml"
says "make check-plugin without FILE: the usage, not a stack trace" \
  '^usage: make check-plugin FILE=my-plugin.yaml' check_plugin
says "make check-plugin FILE=missing.yaml: names the file" \
  'check-plugin: .*missing.yaml: no such file' check_plugin FILE="$TMP/missing.yaml"
f="$(variant my-config-typo -e 's/^    new_trace_sampling:/    sampling:/')"
says "make check-plugin: a bad pluginConfig field is named (spec.pluginConfig, field sampling)" \
  'spec\.pluginConfig: invalid plugin configuration: field `sampling`' check_plugin FILE="$f"
says "make check-plugin: ... and the verdict is NOT valid" '^check-plugin: .*: NOT valid' check_plugin FILE="$f"
f="$(variant my-schema-typo -e 's/^  failStrategy:/  failstrategy:/')"
says "make check-plugin: a bad schema field is named (spec.failstrategy)" \
  'unknown field "spec\.failstrategy"' check_plugin FILE="$f"
says "make check-plugin: ... and the verdict is NOT valid" '^check-plugin: .*: NOT valid' check_plugin FILE="$f"

# --- the manifests the README and docs/ show ------------------------------------------------------
# Every fenced yaml block with an apiVersion and a kind: Istio's schema, strict; a WasmPlugin's
# pluginConfig through check-config. (Placeholders such as REGISTRY are plain strings to both.)
mkdir -p "$TMP/docs"
validate doc-manifests "$TMP/docs" README.md docs/*.md > "$TMP/docs.list"
[ -s "$TMP/docs.list" ] || fail "no manifest found in README.md and docs/ (the extraction broke?)"
while read -r f; do
  expect accept "docs: ${f#"$TMP"/docs/}: valid for Istio (strict)" validate check "$f"
  if grep -q '^kind: WasmPlugin' "$f"; then
    expect accept "docs: ${f#"$TMP"/docs/}: pluginConfig passes check-config" plugin_config_ok "$f"
  fi
done < "$TMP/docs.list"
