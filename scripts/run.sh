#!/usr/bin/env bash
# make run: the filter in local Envoys, in front of an echo upstream, with a trace collector.
#   :10000  examples/envoy.yaml          a hop with no tracer: the filter's context flows
#   :10001  examples/envoy-sidecar.yaml  a hop like an Istio sidecar: Envoy's Zipkin tracer runs
#   :8080   echo upstream (answers with the request headers it received)
#   :9411   Zipkin v2 collector (make traces prints what it holds)
# Ctrl-C stops everything this script started.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ENVOY="${ENVOY_BIN:-$TOOLS/venv/bin/envoy}"
DEVTOOLS="$ROOT/target/release/trace-inject-devtools"
LOGS="$(mktemp -d /tmp/trace-inject-run.XXXXXX)"

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo; echo "stopped (logs were in $LOGS)"
}
trap cleanup INT TERM EXIT

for port in 8080 9411 10000 10001 9901 9902; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: stop whatever listens there (an earlier 'make run'?)" >&2; exit 1
  fi
done

"$DEVTOOLS" echo --port 8080 >"$LOGS/echo.log" 2>&1 & pids+=($!)
"$DEVTOOLS" collector --port 9411 >"$LOGS/collector.log" 2>&1 & pids+=($!)
"$ENVOY" -c examples/envoy.yaml --base-id 1000 -l warning --component-log-level wasm:info \
  --service-cluster edge --service-node edge-1 \
  >"$LOGS/envoy.log" 2>&1 & pids+=($!)
"$ENVOY" -c examples/envoy-sidecar.yaml --base-id 1001 -l warning --component-log-level wasm:info \
  >"$LOGS/envoy-sidecar.log" 2>&1 & pids+=($!)

for admin in 9901 9902; do
  for _ in $(seq 100); do
    curl -sf "localhost:$admin/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "localhost:$admin/ready" >/dev/null || { echo "Envoy (admin :$admin) did not start:"; tail -20 "$LOGS"/envoy*.log; exit 1; }
done

cat <<MSG

trace-inject is running ($(stat -c %s dist/trace_inject.wasm) bytes of Wasm in two Envoys). Try:

  curl -si localhost:10000/            # no tracer on this hop: x-trace-id is the context the filter wrote
  curl -si localhost:10001/            # Envoy's tracer on this hop (like an Istio sidecar)
  curl -si -H 'x-b3-traceid: 463ac35c9f6413ad48485a3953bb6124' -H 'x-b3-spanid: a2fb4a1d1a96d312' localhost:10001/

Then see the traces Envoy reported (about 5 s later):

  make traces                          # or: curl -s localhost:9411/api/v2/traces

Logs: $LOGS (the filter's JSON lines are in envoy*.log). Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
echo "a process exited; stopping the rest" >&2
