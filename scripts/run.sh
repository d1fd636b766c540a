#!/usr/bin/env bash
# make run: the filter in local Envoys, in front of an echo upstream, with a trace collector.
#   :10000  examples/envoy.yaml          a hop with no tracer: the filter's context flows (admin :9901)
#   :10001  examples/envoy-sidecar.yaml  a hop like an Istio sidecar: Envoy's Zipkin tracer runs
#                                        and reports spans to the collector (admin :9902)
#   :10002  examples/envoy-sidecar-otel.yaml  the same with Envoy's OpenTelemetry tracer (Istio's
#                                        `opentelemetry` provider), OTLP to the collector (admin :9903)
#   :8080   echo upstream (answers with the request headers it received)
#   :9411   collector: Zipkin v2 and OTLP/HTTP (/v1/traces); make traces prints what it holds
# Runs until Ctrl-C, which stops everything it started and removes its log folder. If any of these
# processes exits, it prints that process's last log lines and error, stops the rest and keeps the
# log folder.
#
# Environment, for tests and for a machine where a port is taken (defaults in brackets):
#   RUN_ECHO_PORT [8080]  RUN_COLLECTOR_PORT [9411]
#   RUN_EDGE_PORT [10000]  RUN_EDGE_ADMIN_PORT [9901]  RUN_SIDECAR_PORT [10001]  RUN_SIDECAR_ADMIN_PORT [9902]
#   RUN_OTEL_PORT [10002]  RUN_OTEL_ADMIN_PORT [9903]
#   RUN_EXAMPLES [examples]   folder holding the Envoy configs to run (envoy.yaml, envoy-sidecar.yaml)
#   RUN_BASE_ID [1000]        --base-id of the first Envoy; the next ones count up from it
#   RUN_READY_TIMEOUT [30]    seconds to wait for every Envoy to be ready
#   TMPDIR [/tmp]             where the log folder (trace-inject-run.XXXXXX) goes
# A config whose ports are overridden runs as a copy, in the log folder, with the ports replaced
# (`port_value: DEFAULT` -> `port_value: NEW`).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ENVOY="${ENVOY_BIN:-$TOOLS/venv/bin/envoy}"
DEVTOOLS="${CARGO_TARGET_DIR:-$ROOT/target}/release/trace-inject-devtools"
EXAMPLES="${RUN_EXAMPLES:-examples}"
BASE_ID="${RUN_BASE_ID:-1000}"
READY_TIMEOUT="${RUN_READY_TIMEOUT:-30}"

# The port each example config names -> the port this run uses.
declare -A PORT=(
  [8080]="${RUN_ECHO_PORT:-8080}"
  [9411]="${RUN_COLLECTOR_PORT:-9411}"
  [10000]="${RUN_EDGE_PORT:-10000}"
  [9901]="${RUN_EDGE_ADMIN_PORT:-9901}"
  [10001]="${RUN_SIDECAR_PORT:-10001}"
  [9902]="${RUN_SIDECAR_ADMIN_PORT:-9902}"
  [10002]="${RUN_OTEL_PORT:-10002}"
  [9903]="${RUN_OTEL_ADMIN_PORT:-9903}"
)

for f in "$ENVOY" "$DEVTOOLS" dist/trace_inject.wasm; do
  [ -e "$f" ] || { echo "make run: $f is missing: run 'make run' (it builds and installs what it needs)" >&2; exit 1; }
done
apt_install curl
for port in $(printf '%s\n' "${PORT[@]}" | sort -n); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "make run: port $port is in use: stop what listens there (an earlier 'make run'? see: ss -ltnp 'sport = :$port')" >&2
    exit 1
  fi
done

LOGS="$(mktemp -d "${TMPDIR:-/tmp}/trace-inject-run.XXXXXX")"
declare -A NAME_OF=() WHAT=() ADMIN_FILE=()
pids=()
watcher=""
FAILED=""

cleanup() {
  local rc=$?
  trap - INT TERM EXIT
  for p in "${pids[@]}" $watcher; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$FAILED" ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ]; }; then
    echo "make run: stopped everything it started; logs kept in $LOGS" >&2
    exit 1
  fi
  rm -rf "$LOGS"
  echo; echo "stopped (Ctrl-C): everything 'make run' started, and its log folder"
  exit 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME WHAT CMD...: runs CMD in the background, its output in $LOGS/NAME.log.
start() {
  local name="$1" what="$2"; shift 2
  "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=($!); NAME_OF[$!]="$name"; WHAT[$name]="$what"
}

# config FILE: FILE as this run uses it: itself, or a copy with the overridden ports.
config() {
  local file="$EXAMPLES/$1" copy="$LOGS/$1" args=() default
  for default in "${!PORT[@]}"; do
    [ "${PORT[$default]}" = "$default" ] && continue
    # Two steps (through a marker) so that one replacement cannot feed another.
    args+=(-e "s/port_value: $default\\b/port_value: @$default@/" -e "s/@$default@/${PORT[$default]}/")
  done
  if [ ${#args[@]} -eq 0 ]; then echo "$file"; return; fi
  sed "${args[@]}" "$file" >"$copy" && echo "$copy"
}

# start_envoy NAME CONFIG [ENVOY ARGS...]: one Envoy; ready once its admin answers /ready.
start_envoy() {
  local name="$1" cfg; cfg="$(config "$2")"; shift 2
  ADMIN_FILE[$name]="$LOGS/$name.admin"
  start "$name" "Envoy, $cfg" "$ENVOY" -c "$cfg" --base-id "$((BASE_ID + ${#ADMIN_FILE[@]} - 1))" \
    --admin-address-path "${ADMIN_FILE[$name]}" -l warning --component-log-level wasm:info "$@"
}

# What to do about an error line Envoy or the devtools printed.
hint() {
  case "$1" in
    *"invalid plugin configuration"*)
      echo "fix the plugin configuration (the 'configuration' value in the config above; README \"Configuration\");"
      echo "check one before running it: cargo run -q --bin check-config -- FILE.json" ;;
    *"Invalid path:"*)
      echo "the Wasm module path (vm_config.code.local.filename) does not exist; it is relative to the"
      echo "repository root; 'make build' writes dist/trace_inject.wasm" ;;
    *"Failed to load Wasm code"*|*"Failed to load Wasm module"*)
      echo "the file is not a proxy-wasm module: point vm_config.code.local.filename at dist/trace_inject.wasm" ;;
    *"unable to bind domain socket with base_id"*)
      echo "another Envoy uses this --base-id: stop it, or give this run others: RUN_BASE_ID=N make run" ;;
    *"Address already in use"*|*"cannot bind"*|*"bind 127.0.0.1"*)
      echo "a port is taken: stop what listens there, or set RUN_*_PORT (scripts/run.sh says which)" ;;
    *)
      echo "Envoy names the offending field or line above; check a config without serving it:"
      echo "$ENVOY --mode validate -c FILE" ;;
  esac
}

# failed PID STATUS: says which process exited and why, then stops the rest (cleanup).
failed() {
  local name="${NAME_OF[$1]}" log="$LOGS/${NAME_OF[$1]}.log" err
  FAILED="$name"
  # The most telling line: the filter's refusal (it names the field); else the message Envoy
  # prints last when it gives up at start (no [time][thread] prefix); else its first error line.
  local strip='s/^(\[[^]]*\]){4} (\[[^]]*\] )?//; s/^wasm log [^:]*: //'
  err="$(grep -m1 'invalid plugin configuration' "$log" | sed -E "$strip" || true)"
  if [ -z "$err" ]; then
    err="$(tail -n 1 "$log")"
    [[ "$err" != "["* ]] || err="$(grep -m1 -E '\]\[(error|critical)\]' "$log" | sed -E "$strip" || true)"
  fi
  [ -n "$err" ] || err="$(tail -n 1 "$log")"
  {
    echo
    echo "make run: $name (${WHAT[$name]}) exited (status $2): $err"
    echo "--- last lines of $log:"
    tail -n 12 "$log" | sed 's/^/  /'
    echo "---"
    hint "$err" | sed '1s/^/what to do: /; 2,$s/^/            /'
    echo "see more: less $log"
  } >&2
  exit 1
}

start echo "echo upstream" "$DEVTOOLS" echo --port "${PORT[8080]}"
start collector "collector (Zipkin and OTLP)" "$DEVTOOLS" collector --port "${PORT[9411]}"
start_envoy envoy envoy.yaml --service-cluster edge --service-node edge-1
start_envoy envoy-sidecar envoy-sidecar.yaml
start_envoy envoy-sidecar-otel envoy-sidecar-otel.yaml

# first_exit PID...: returns once one of them has exited, with its pid in $exited and its status
# in $status. Polled rather than `wait -n PID...`: bash drops a background job that exits while a
# foreground command runs (here: as the banner prints), and `wait -n` then waits for the others
# only, for ever (bash 5.2; make run hung when the echo died as the banner printed). `wait PID`
# still finds the status of a dropped job.
first_exit() {
  local p
  while :; do
    for p in "$@"; do
      if ! kill -0 "$p" 2>/dev/null; then
        exited="$p" status=0
        wait "$p" || status=$?
        return
      fi
    done
    sleep 0.2
  done
}

# Ready when every Envoy's admin says so. The check runs beside the processes, so that first_exit
# returns the moment any of them exits (an Envoy busy compiling Wasm can hold /ready for seconds).
ready_watch() {
  local deadline=$(($(date +%s) + READY_TIMEOUT)) name f
  for name in "${!ADMIN_FILE[@]}"; do
    f="${ADMIN_FILE[$name]}"
    until [ -s "$f" ] && curl -sf --max-time 2 -o /dev/null "http://$(cat "$f")/ready" 2>/dev/null; do
      [ "$(date +%s)" -lt "$deadline" ] || { echo "$name"; exit 1; }
      sleep 0.1
    done
  done
}
ready_watch >"$LOGS/not-ready" & watcher=$!
first_exit "${pids[@]}" "$watcher"
if [ "$exited" != "$watcher" ]; then
  failed "$exited" "$status"
elif [ "$status" -ne 0 ]; then
  echo "make run: $(cat "$LOGS/not-ready") not ready after ${READY_TIMEOUT}s (logs: $LOGS; more time: RUN_READY_TIMEOUT=120 make run)" >&2
  FAILED=timeout; exit 1
fi
rm -f "$LOGS/not-ready"

traces="make traces"
[ "${PORT[9411]}" = 9411 ] || traces="$DEVTOOLS traces --collector http://127.0.0.1:${PORT[9411]}"
cat <<MSG

trace-inject is running ($(stat -c %s dist/trace_inject.wasm) bytes of Wasm in three Envoys). Try:

  curl -si localhost:${PORT[10000]}/            # no tracer on this hop: x-trace-id is the context the filter wrote
  curl -si localhost:${PORT[10001]}/            # Envoy's Zipkin tracer on this hop (like an Istio sidecar)
  curl -si localhost:${PORT[10002]}/            # Envoy's OpenTelemetry tracer on this hop (Istio's opentelemetry provider)
  curl -si -H 'x-b3-traceid: 463ac35c9f6413ad48485a3953bb6124' -H 'x-b3-spanid: a2fb4a1d1a96d312' localhost:${PORT[10001]}/

Then see the traces the collector holds (about 5 s later; :${PORT[10000]} has no tracer and reports
spans only when its plugin configuration turns "export" on: README "Try your own configuration"):

$(printf '  %-36s # or: curl -s localhost:%s/api/v2/traces' "$traces" "${PORT[9411]}")

Logs: $LOGS (the filter's JSON lines are in envoy*.log).
Runs until Ctrl-C (use a second terminal for the commands above).
MSG

first_exit "${pids[@]}"
failed "$exited" "$status"
