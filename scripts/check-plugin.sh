#!/usr/bin/env bash
# make check-plugin FILE=my-plugin.yaml: the WasmPlugin you are about to apply, checked the way
# `make test-wasmplugin` checks the repository's own wasm-plugin.yaml, without a cluster:
#   1. Istio's CRD schema, strictly (an unknown field is named, as `kubectl apply
#      --validate=strict` names it), with tests/wasmplugin/validate.mjs; other Istio resources in
#      the file (Telemetry, VirtualService, EnvoyFilter) are checked the same way;
#   2. each WasmPlugin's pluginConfig with the filter's own parser (check-config): a field the
#      filter would refuse is named, before istiod sends it to the proxies (which would refuse it
#      and keep the previous configuration).
# Installs what it needs (Node.js and npm from Debian if missing, the validator's npm packages into
# .tools/node), idempotently. Exit 0 when every check passes, 1 when one fails, 2 on bad usage.
#   check-plugin.sh FILE     (a path from the repository root, or absolute)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
FILE="${1:-}"
if [ -z "$FILE" ]; then
  echo "usage: make check-plugin FILE=my-plugin.yaml   (a WasmPlugin manifest: Istio's schema + pluginConfig)" >&2
  exit 2
fi
[ -f "$FILE" ] || { echo "check-plugin: $FILE: no such file (give a path from $ROOT, or an absolute one)" >&2; exit 2; }

scripts/install-node-tools.sh
cargo build -q --locked --bin check-config
CHECK_CONFIG="${CARGO_TARGET_DIR:-$ROOT/target}/debug/check-config"
validate() { node "$ROOT/tests/wasmplugin/validate.mjs" "$@"; }

failed=0
validate check "$FILE" || failed=1
configs="$(validate plugin-configs "$FILE")" || failed=1
plugins=0
while IFS=$'\t' read -r n name json; do
  [ -n "$n" ] || continue
  plugins=$((plugins + 1))
  if out="$(printf '%s' "$json" | "$CHECK_CONFIG" 2>&1)"; then
    echo "$FILE [$n] WasmPlugin $name: pluginConfig: $out"
  else
    # One line per problem, each naming the plugin.
    while IFS= read -r line; do
      echo "$FILE [$n] WasmPlugin $name: spec.pluginConfig: $line"
    done <<<"$out"
    failed=1
  fi
done <<<"$configs"
if [ "$plugins" -eq 0 ]; then
  echo "$FILE: no WasmPlugin in it (apiVersion extensions.istio.io/v1alpha1, kind WasmPlugin)"
  failed=1
fi
if [ "$failed" -eq 0 ]; then
  echo "check-plugin: $FILE: valid ($plugins WasmPlugin: Istio's schema, strict, and pluginConfig)"
else
  echo "check-plugin: $FILE: NOT valid (the lines above name each problem)"
  exit 1
fi
