#!/usr/bin/env bash
# Runs the official W3C Trace Context test suite (w3c/trace-context `test/`, fetched by you:
# it is not part of this repository) against Envoy + trace-inject, examples/envoy.yaml, with
# tests/w3c/service.py as the app behind it. See tests/w3c/README.md.
#
#   W3C_SUITE=/path/to/trace-context/test tests/w3c/run.sh [unittest patterns...]
#   PLUGIN_CONFIG='{"tracer":"none"}' (default) or e.g. '{"tracer":"none","export":{"cluster":"zipkin"}}'
#   STRICT_LEVEL=2 SPEC_LEVEL=2 (defaults here: strict, and the Level 2 test included)
#   EGRESS=1: the app's callbacks also pass a second Envoy + filter (same PLUGIN_CONFIG) on their
#             way to the harness, as an Istio sidecar intercepts outbound calls too
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$ROOT"
: "${W3C_SUITE:?set W3C_SUITE to the test/ directory of a w3c/trace-context checkout}"
[ -f "$W3C_SUITE/test.py" ] || { echo "no test.py in $W3C_SUITE" >&2; exit 2; }
[ -n "${PLUGIN_CONFIG:-}" ] || PLUGIN_CONFIG='{"tracer":"none"}'
export PLUGIN_CONFIG
ENVOY="${ENVOY_BIN:-$TOOLS/venv/bin/envoy}"
VENV="$TOOLS/w3c-venv"
[ -f dist/trace_inject.wasm ] || { echo "dist/trace_inject.wasm is missing: make build" >&2; exit 2; }

# The harness needs aiohttp (its README); a venv of its own, installed once.
if ! "$VENV/bin/python" -c 'import aiohttp' 2>/dev/null; then
  log "installing aiohttp into $VENV (pip)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check aiohttp
fi

# The harness listens on 127.0.0.1:7777, fixed in its test.py.
if (exec 3<>/dev/tcp/127.0.0.1/7777) 2>/dev/null; then
  echo "port 7777 (the harness's, fixed in test.py) is in use" >&2; exit 1
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
APP_PORT=$(free_port); LISTENER=$(free_port); COLLECTOR=$(free_port); EGRESS_PORT=$(free_port)
WORK="$(mktemp -d /tmp/trace-inject-w3c.XXXXXX)"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

python3 tests/w3c/service.py "$APP_PORT" ${EGRESS:+"$EGRESS_PORT"} >"$WORK/service.log" 2>&1 & pids+=($!)
# A sink for the filter's own spans when PLUGIN_CONFIG turns export on (any 2xx will do).
python3 -c '
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(202); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$COLLECTOR" >/dev/null 2>&1 & pids+=($!)

# envoy_on LISTENER UPSTREAM NAME: examples/envoy.yaml with these ports and PLUGIN_CONFIG swapped
# in (the same edits the e2e tests make), started in the background.
envoy_on() {
  python3 - "$1" "$2" "$COLLECTOR" "$ROOT" >"$WORK/$3.yaml" <<'PY'
import os, sys
listener, app, collector, root = sys.argv[1:]
text = open("examples/envoy.yaml").read()
for old, new in [
    ("port_value: 10000}", f"port_value: {listener}}}"),
    ("port_value: 8080}", f"port_value: {app}}}"),
    ("port_value: 9411}", f"port_value: {collector}}}"),
    ("port_value: 9901}", "port_value: 0}"),
    ("value: '{}'", "value: '" + os.environ["PLUGIN_CONFIG"].replace("'", "''") + "'"),
    ("filename: dist/trace_inject.wasm", f"filename: {root}/dist/trace_inject.wasm"),
]:
    assert old in text, old
    text = text.replace(old, new)
print(text, end="")
PY
  "$ENVOY" -c "$WORK/$3.yaml" --base-id $((20000 + RANDOM % 10000)) --concurrency 1 \
    -l warning --component-log-level wasm:info >"$WORK/$3.log" 2>&1 & pids+=($!)
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  echo "Envoy $3 did not start:"; tail -20 "$WORK/$3.log"; exit 1
}
envoy_on "$LISTENER" "$APP_PORT" ingress
# The harness is on 7777 (fixed in its test.py).
[ -z "${EGRESS:-}" ] || envoy_on "$EGRESS_PORT" 7777 egress
log "Envoy :$LISTENER (plugin config $PLUGIN_CONFIG) -> service :$APP_PORT${EGRESS:+ -> Envoy :$EGRESS_PORT -> harness}; logs in $WORK"

cd "$W3C_SUITE"
STRICT_LEVEL="${STRICT_LEVEL:-2}" SPEC_LEVEL="${SPEC_LEVEL:-2}" \
  "$VENV/bin/python" test.py "http://127.0.0.1:$LISTENER/test" "$@"
