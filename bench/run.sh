#!/usr/bin/env bash
# make bench: what trace-inject costs, side by side, in one run; writes bench/results.md.
#
#   1. Instructions per request of the pure per-request path (TraceHeaders::collect +
#      decision::decide + formatting), native, counted by valgrind --tool=callgrind.
#   2. Requests/s, latency and Envoy's CPU per request through a real Envoy (one worker, pinned to
#      one core) driven by wrk (pinned to the other core; its numbers read by
#      bench/wrk-report.lua). On a direct_response route:
#        a router    the router alone
#        b noop      a proxy-wasm Rust filter that does nothing (bench/noop): the physical limit
#        h floor     the job floor (bench/floor): only the host calls this job needs (read the
#                    header map, add four headers, look up and add x-trace-id), no logic
#        c inject    trace-inject `{"tracer":"none"}`, no incoming context (a new trace)
#        j default   the default configuration `{}`: on a route that never goes upstream it never
#                    learns the hop, so it writes nothing of its own (what that costs)
#        d propagate trace-inject, a valid B3 context (only traceparent added)
#        e repair    trace-inject, a malformed B3 context (a new trace replaces it)
#        f lua       an Envoy Lua filter doing (c)'s header work (bench/filters/inject.lua)
#        g export    (c) plus the filter's own span per request, posted to a closed port
#      On a route that goes upstream (another Envoy answering directly, on wrk's core):
#        ha floor-up, ca inject-up, ja default-up   (h), (c), (j) there; (ja) learns "no tracer"
#                    from its first request
#      A tracer hop (route upstream; Envoy's Zipkin tracer as Istio configures it, the five
#      workload span tags, %TRACE_ID%; spans posted to the devtools collector on COLLECTOR_CPU), at
#      Istio's 1 % and at 100 %:
#        i0 tracer1 / tracer100          router + tracer
#        t  tfloor1 / tfloor100          the tracer-hop floor: bench/floor writing the five span
#                                        tags on every request, looking up x-trace-id
#        i  tinject1 / tinject100        trace-inject `{}` (learnt: zipkin)
#      ROUNDS rounds, the configurations interleaved (each round starts one later), a fresh Envoy
#      per measurement so each filter is alone on its core; the median round is reported.
#   3. The .wasm sizes.
#
#   4. Envoy's resident memory per filter (bench/memory.sh: 2 workers, after 300 requests).
#
# Needs the .wasm files, the native driver and the devtools built (make bench does that). Knobs
# (environment):
#   ROUNDS=3 DURATION=10 WARMUP=1 CONNECTIONS=16 ITERATIONS=20000 BENCH_PORT=18000 (and the 5 after it)
#   PLUGIN_CONFIG='{"tracer":"none"}' OUT=bench/results.md ENVOY_CPU=0 WRK_CPU=1 COLLECTOR_CPU=$WRK_CPU
#   CONFIGS="router noop floor inject ..." (a subset of ALL_CONFIGS below, in any order)
#   SKIP_HTTP=1 SKIP_INSTR=1 SKIP_MEMORY=1
#   NOISE_LIMIT=10 RETRIES=4 (a measurement while other processes took more than NOISE_LIMIT % of a
#   core is repeated, at most RETRIES times per run)
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

ENVOY="${ENVOY_BIN:-$TOOLS/venv/bin/envoy}"
WASM="${WASM:-dist/trace_inject.wasm}"
NOOP_WASM="${NOOP_WASM:-dist/bench_noop.wasm}"
FLOOR_WASM="${FLOOR_WASM:-dist/bench_floor.wasm}"
DEVTOOLS="${DEVTOOLS:-${CARGO_TARGET_DIR:-$ROOT/target}/release/trace-inject-devtools}"
WRK_REPORT="bench/wrk-report.lua"
PERCALL="${PERCALL:-${CARGO_TARGET_DIR:-$ROOT/target}/release/trace-inject-percall}"
LUA="bench/filters/inject.lua"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-1}"
CONNECTIONS="${CONNECTIONS:-16}"
ITERATIONS="${ITERATIONS:-20000}"
PORT="${BENCH_PORT:-18000}"
ADMIN_PORT=$((PORT + 1))
ZIPKIN_PORT=$((PORT + 2))
COLLECTOR_PORT=$((PORT + 3))
UPSTREAM_PORT=$((PORT + 4))
UPSTREAM_ADMIN_PORT=$((PORT + 5))
# This Envoy has no tracer: `tracer: none` is the setting for such a hop, and what `auto` (the
# default) settles on once a request has gone upstream, which never happens on a direct_response
# route (auto stays undecided there: row (j) measures what that costs).
PLUGIN_CONFIG="${PLUGIN_CONFIG:-}"; [ -n "$PLUGIN_CONFIG" ] || PLUGIN_CONFIG='{"tracer":"none"}'
OUT="${OUT:-bench/results.md}"
ENVOY_CPU="${ENVOY_CPU:-0}"
WRK_CPU="${WRK_CPU:-1}"
# The collector shares wrk's core, so that Envoy's core runs Envoy alone.
COLLECTOR_CPU="${COLLECTOR_CPU:-$WRK_CPU}"

apt_install wrk valgrind curl util-linux
scripts/install-envoy.sh
for p in "$PORT" "$ADMIN_PORT" "$ZIPKIN_PORT" "$COLLECTOR_PORT" "$UPSTREAM_PORT" "$UPSTREAM_ADMIN_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p is in use (set BENCH_PORT: it and the 5 ports after it must be free)" >&2; exit 1
  fi
done

WORK="$(mktemp -d /tmp/trace-inject-bench.XXXXXX)"
ENVOY_PID=""
COLLECTOR_PID=""
UPSTREAM_PID=""
cleanup() {
  local rc=$?
  for p in "$ENVOY_PID" "$COLLECTOR_PID" "$UPSTREAM_PID"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  # Logs and raw wrk output are kept only when something failed.
  if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else echo "logs: $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The headers of cases d and e, the same the native driver uses (bench/percall/src/main.rs).
TRACE_ID=463ac35c9f6413ad48485a3953bb6124
SPAN_ID=a2fb4a1d1a96d312
VALID_B3="x-b3-traceid: $TRACE_ID|x-b3-spanid: $SPAN_ID|x-b3-sampled: 1"
# (Upper case is read leniently, as Envoy and OpenTelemetry do: a 31-digit id is malformed.)
MALFORMED_B3="x-b3-traceid: ${TRACE_ID:0:31}|x-b3-spanid: $SPAN_ID|x-b3-sampled: 1"

ALL_CONFIGS="router noop floor inject default propagate repair lua export floor-up inject-up default-up tracer1 tfloor1 tinject1 tracer100 tfloor100 tinject100"
read -ra CONFIGS <<<"${CONFIGS:-$ALL_CONFIGS}"
declare -A LABEL=(
  [router]="(a) router only"
  [noop]="(b) no-op proxy-wasm filter"
  [floor]="(h) job floor (bench/floor)"
  [inject]="(c) trace-inject {\"tracer\":\"none\"}: inject"
  [default]="(j) trace-inject {}, direct route: hop never learnt"
  [propagate]="(d) trace-inject: propagate valid B3"
  [repair]="(e) trace-inject: repair malformed B3"
  [lua]="(f) Lua filter: inject"
  [export]="(g) trace-inject: inject + export own spans"
  [floor-up]="(ha) job floor, route upstream"
  [inject-up]="(ca) trace-inject {\"tracer\":\"none\"}, route upstream"
  [default-up]="(ja) trace-inject {}, route upstream (learnt: no tracer)"
  [tracer1]="(i0) router + Zipkin tracer 1 %"
  [tfloor1]="(t) tracer-hop floor, 1 %"
  [tinject1]="(i) trace-inject {} beside the tracer, 1 %"
  [tracer100]="(i0') router + Zipkin tracer 100 %"
  [tfloor100]="(t') tracer-hop floor, 100 %"
  [tinject100]="(i') trace-inject {} beside the tracer, 100 %"
)
for c in "${CONFIGS[@]}"; do
  [ -n "${LABEL[$c]:-}" ] || { echo "unknown configuration '$c' (known: $ALL_CONFIGS)" >&2; exit 2; }
done
declare -A SNIPPET=([router]="" [noop]=noop [floor]=floor [inject]=trace-inject [default]=trace-inject
  [propagate]=trace-inject [repair]=trace-inject [lua]=lua [export]=trace-inject
  [floor-up]=floor [inject-up]=trace-inject [default-up]=trace-inject
  [tracer1]="" [tfloor1]=floor [tinject1]=trace-inject
  [tracer100]="" [tfloor100]=floor [tinject100]=trace-inject)
declare -A HEADERS=([propagate]="$VALID_B3" [repair]="$MALFORMED_B3")
# The rows whose route goes upstream, and the tracer-hop rows with their sampling percentage.
declare -A UPSTREAM=([floor-up]=1 [inject-up]=1 [default-up]=1 [tracer1]=1 [tfloor1]=1 [tinject1]=1
  [tracer100]=1 [tfloor100]=1 [tinject100]=1)
declare -A TRACED=([tracer1]=1 [tfloor1]=1 [tinject1]=1 [tracer100]=100 [tfloor100]=100 [tinject100]=100)
# (g): the filter's own span per request, posted to the `zipkin` cluster, where nothing listens
# (connection refused): the filter's cost of building, buffering, encoding and posting spans,
# without a collector competing for the two cores.
declare -A PLUGIN=(
  [default]='{}'
  [default-up]='{}'
  [export]='{"tracer":"none","export":{"cluster":"zipkin","flush_interval_ms":100,"batch_size":1000,"buffer_limit":10000}}'
  [tinject1]='{}'
  [tinject100]='{}'
)
declare -A FLOOR_MODE=([tfloor1]=tracer [tfloor100]=tracer)
NEEDED=("$WASM" "$NOOP_WASM" "$FLOOR_WASM" "$PERCALL" "$DEVTOOLS")
for f in "${NEEDED[@]}"; do
  [ -e "$f" ] || { echo "$f is missing: run 'make bench' (it builds it)" >&2; exit 1; }
done
# The rows of trace-inject: the row each is held to, and the goal (× that row's requests/s).
TI_ROWS=(inject default propagate repair export inject-up default-up tinject1 tinject100)
declare -A GOAL_REF=([inject]=floor [default]=floor [propagate]=floor [repair]=floor [export]=floor
  [inject-up]=floor-up [default-up]=floor-up [tinject1]=tfloor1 [tinject100]=tfloor100)
declare -A GOAL=([tinject1]=1.05)
# Every row's reference in the table: the floor of its kind of route.
declare -A REF=([floor-up]="" [inject-up]=floor-up [default-up]=floor-up
  [tracer1]="" [tfloor1]=tracer1 [tinject1]=tfloor1 [tracer100]="" [tfloor100]=tracer100
  [tinject100]=tfloor100)

now() { date -u '+%Y-%m-%d %H:%M UTC'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
# user+nice+system jiffies of all cores (irq/softirq left out: loopback's softirq is the test's).
busy_jiffies() { awk '/^cpu /{print $2+$3+$4}' /proc/stat; }
# Time the hypervisor gave to someone else (this is a VM): CPU the benchmark wanted and lacked.
steal_jiffies() { awk '/^cpu /{print $9}' /proc/stat; }
proc_jiffies() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ="$(getconf CLK_TCK)"

START_DATE="$(now)"
LOAD_BEFORE="$(loadavg)"
CPU_MODEL="$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
ENVOY_VERSION="$("$ENVOY" --version 2>/dev/null | grep -o 'version: .*' | sed 's/^version: //')"
log "machine: $(nproc) cores, $CPU_MODEL; load average $LOAD_BEFORE"
log "Envoy: $ENVOY_VERSION"

# ---------------------------------------------------------------------------------------------
# 1. Instructions per request (native, callgrind).
declare -A INSTR=()
INSTR_CASES=(empty inject propagate repair ids inject-splitmix)
if [ -z "${SKIP_INSTR:-}" ]; then
  for c in "${INSTR_CASES[@]}"; do
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$c" "$PERCALL" "$c" "$ITERATIONS" \
      >/dev/null 2>"$WORK/callgrind.$c.log" || { cat "$WORK/callgrind.$c.log" >&2; exit 1; }
    INSTR[$c]="$(awk '/^(summary|totals):/{print $2; exit}' "$WORK/callgrind.$c")"
  done
  per_req() { awk -v t="${INSTR[$1]}" -v e="${INSTR[empty]}" -v n="$ITERATIONS" 'BEGIN{printf "%.0f", (t-e)/n}'; }
  INSTR_TABLE="| case | instructions per request |
| --- | ---: |
| inject (no incoming context) | $(per_req inject) |
| propagate (valid B3 multi) | $(per_req propagate) |
| repair (malformed B3 multi) | $(per_req repair) |
| of which: one trace id + span id from StdRng (ChaCha12) | $(per_req ids) |
| inject with a splitmix64 IdSource instead of StdRng | $(per_req inject-splitmix) |"
  printf '\nInstructions per request (native x86-64, callgrind, %s iterations minus the empty loop):\n%s\n\n' \
    "$ITERATIONS" "$INSTR_TABLE" >&2
fi

# ---------------------------------------------------------------------------------------------
# 2. Requests/s through Envoy.
abs() { realpath -m "$1"; }
config_file() { # NAME -> path of its Envoy config
  local name="$1" out="$WORK/envoy-$1.yaml" snippet="${SNIPPET[$1]}"
  local -a edits=()
  if [ -z "$snippet" ]; then edits+=(-e '/#@HTTP_FILTERS@/d')
  else edits+=(-e "/#@HTTP_FILTERS@/{r bench/filters/$snippet.yaml" -e 'd}'); fi
  if [ -n "${UPSTREAM[$name]:-}" ]; then edits+=(-e 's|#@ROUTE@|route: {cluster: upstream}|')
  else edits+=(-e 's|#@ROUTE@|direct_response: {status: 200, body: {inline_string: "ok\\n"}}|'); fi
  if [ -z "${TRACED[$name]:-}" ]; then edits+=(-e '/#@TRACING@/d' -e '/#@VHOST_TRACING@/d')
  else
    edits+=(-e '/#@TRACING@/{r bench/tracer/hcm.yaml' -e 'd}')
    edits+=(-e '/#@VHOST_TRACING@/{r bench/tracer/vhost.yaml' -e 'd}')
  fi
  sed "${edits[@]}" bench/envoy-bench.yaml >"$out"
  # YAML single quotes double a quote; sed's replacement escapes \ & and the | delimiter.
  local pcfg="${PLUGIN[$name]:-$PLUGIN_CONFIG}"
  local pc="${pcfg//\'/\'\'}"
  pc="$(sed -e 's/[\\&|]/\\&/g' <<<"$pc")"
  sed -i -e "s|@PORT@|$PORT|; s|@ADMIN_PORT@|$ADMIN_PORT|; s|@ZIPKIN_PORT@|$ZIPKIN_PORT|" \
    -e "s|@COLLECTOR_PORT@|$COLLECTOR_PORT|; s|@UPSTREAM_PORT@|$UPSTREAM_PORT|" \
    -e "s|@SAMPLING@|${TRACED[$name]:-100}|; s|@FLOOR_CONFIG@|${FLOOR_MODE[$name]:-}|" \
    -e "s|@WASM@|$(abs "$WASM")|; s|@NOOP_WASM@|$(abs "$NOOP_WASM")|; s|@LUA@|$(abs "$LUA")|" \
    -e "s|@FLOOR_WASM@|$(abs "$FLOOR_WASM")|" \
    -e "s|@PLUGIN_CONFIG@|$pc|" "$out"
  echo "$out"
}

start_envoy() { # CONFIG_FILE LOG
  taskset -c "$ENVOY_CPU" "$ENVOY" -c "$1" --concurrency 1 --disable-hot-restart -l warning \
    >"$2" 2>&1 &
  ENVOY_PID=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && return 0
    kill -0 "$ENVOY_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "Envoy did not become ready ($1):" >&2; tail -30 "$2" >&2; exit 1
}

stop_envoy() {
  kill "$ENVOY_PID" 2>/dev/null || true
  wait "$ENVOY_PID" 2>/dev/null || true
  ENVOY_PID=""
}

COLLECTOR="http://127.0.0.1:$COLLECTOR_PORT"
start_collector() { # LOG
  taskset -c "$COLLECTOR_CPU" "$DEVTOOLS" collector --port "$COLLECTOR_PORT" -q >"$1" 2>&1 &
  COLLECTOR_PID=$!
  for _ in $(seq 100); do
    curl -sf "$COLLECTOR/health" >/dev/null 2>&1 && return 0
    kill -0 "$COLLECTOR_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "the collector did not start:" >&2; cat "$1" >&2; exit 1
}

stop_collector() {
  [ -n "$COLLECTOR_PID" ] || return 0
  kill "$COLLECTOR_PID" 2>/dev/null || true
  wait "$COLLECTOR_PID" 2>/dev/null || true
  COLLECTOR_PID=""
}

# The upstream of the rows whose route goes upstream: an Envoy answering directly, on wrk's core,
# for the whole run.
start_upstream() {
  local cfg="$WORK/upstream.yaml"
  sed -e '/#@HTTP_FILTERS@/d' -e '/#@TRACING@/d' -e '/#@VHOST_TRACING@/d' \
    -e 's|#@ROUTE@|direct_response: {status: 200, body: {inline_string: "ok\\n"}}|' \
    -e "s|@PORT@|$UPSTREAM_PORT|; s|@ADMIN_PORT@|$UPSTREAM_ADMIN_PORT|; s|@ZIPKIN_PORT@|$ZIPKIN_PORT|" \
    -e "s|@COLLECTOR_PORT@|$COLLECTOR_PORT|; s|@UPSTREAM_PORT@|$UPSTREAM_PORT|" \
    bench/envoy-bench.yaml >"$cfg"
  taskset -c "$WRK_CPU" "$ENVOY" -c "$cfg" --concurrency 1 --disable-hot-restart -l warning \
    --base-id 7 >"$WORK/upstream.log" 2>&1 &
  UPSTREAM_PID=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$UPSTREAM_ADMIN_PORT/ready" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "the upstream Envoy did not start:" >&2; tail -20 "$WORK/upstream.log" >&2; exit 1
}

curl_headers() { # NAME -> curl -H arguments
  local -a out=() hs=()
  [ -n "${HEADERS[$1]:-}" ] && IFS='|' read -ra hs <<<"${HEADERS[$1]}"
  for h in "${hs[@]}"; do out+=(-H "$h"); done
  [ ${#out[@]} -eq 0 ] || printf '%s\n' "${out[@]}"
}

# Before measuring: one request to /check, which echoes the request headers as the filters left
# them, proving the filter under test is in the chain and does its job. On the tracer hop the
# check sends a `traceparent`: Envoy's tracer (USE_B3) starts a new trace and leaves it stale, and
# trace-inject removes it (a context beside the tracer's); %TRACE_ID% returns the tracer's id.
check() { # NAME
  local name="$1" resp; local -a args=()
  mapfile -t args < <(curl_headers "$name")
  [ -z "${TRACED[$name]:-}" ] || args+=(-H "traceparent: 00-$TRACE_ID-$SPAN_ID-01")
  resp="$(curl -s -D - -o /dev/null "${args[@]}" "http://127.0.0.1:$PORT/check" | tr -d '\r')"
  hdr() { awk -v n="$1:" 'tolower($1)==n {print $2; exit}' <<<"$resp"; }
  local status tid sid tp xt
  status="$(awk 'NR==1{print $2}' <<<"$resp")"
  tid="$(hdr seen-x-b3-traceid)"; sid="$(hdr seen-x-b3-spanid)"; tp="$(hdr seen-traceparent)"
  xt="$(hdr x-trace-id)"
  local fail=""
  [ "$status" = 200 ] || fail="status $status"
  case "$name" in
    default)
      # A route that never goes upstream never shows the hop: nothing of the filter's own.
      [ -z "$xt" ] && [ -z "$tid" ] && [ -z "$tp" ] ||
        fail="wrote while the hop is unknown: x-trace-id=$xt x-b3-traceid=$tid traceparent=$tp" ;;
    tracer1|tracer100|tfloor1|tfloor100)
      [[ "$xt" =~ ^[0-9a-f]{32}$ ]] && [ "$xt" != "$TRACE_ID" ] ||
        fail="not the tracer's new trace: x-trace-id=$xt" ;;
    tinject1|tinject100)
      [[ "$xt" =~ ^[0-9a-f]{32}$ ]] && [ "$xt" != "$TRACE_ID" ] && [ -z "$tp" ] && [ -z "$tid" ] ||
        fail="not trace-inject beside the tracer: x-trace-id=$xt traceparent=$tp x-b3-traceid=$tid" ;;
    router|noop)
      [ -z "$xt" ] && [ -z "$tid" ] && [ -z "$tp" ] || fail="unexpected trace headers (x-trace-id=$xt x-b3-traceid=$tid)" ;;
    floor|inject|repair|lua|export|floor-up|inject-up|default-up)
      [[ "$tid" =~ ^[0-9a-f]{32}$ ]] && [[ "$sid" =~ ^[0-9a-f]{16}$ ]] &&
        [[ "$tp" =~ ^00-$tid-$sid-0[13]$ ]] && [ "$xt" = "$tid" ] && [ "$tid" != "$TRACE_ID" ] ||
        fail="not a new trace: x-b3-traceid=$tid x-b3-spanid=$sid traceparent=$tp x-trace-id=$xt" ;;
    propagate)
      [ "$tid" = "$TRACE_ID" ] && [ "$sid" = "$SPAN_ID" ] && [ "$tp" = "00-$TRACE_ID-$SPAN_ID-01" ] &&
        [ "$xt" = "$TRACE_ID" ] ||
        fail="not propagated: x-b3-traceid=$tid traceparent=$tp x-trace-id=$xt" ;;
  esac
  if [ -n "$fail" ]; then echo "check of $name failed: $fail" >&2; echo "$resp" >&2; exit 1; fi
}

declare -A RPS=() P50=() P99=() CPU=()
NOISE=() STEAL=() ERRORS=()
measure() { # NAME ROUND
  local name="$1" round="$2" cfg log wrk_out; local -a args=()
  cfg="$(config_file "$name")"; log="$WORK/envoy-$name-$round.log"; wrk_out="$WORK/wrk-$name-$round.txt"
  mapfile -t args < <(curl_headers "$name")
  [ -z "${TRACED[$name]:-}" ] || start_collector "$WORK/collector-$name-$round.log"
  start_envoy "$cfg" "$log"
  # What a hop with the default configuration sees first: a request that goes upstream and
  # teaches it the hop (the rows whose route does not go upstream cannot learn it).
  [ -z "${UPSTREAM[$name]:-}" ] || curl -s -o /dev/null "http://127.0.0.1:$PORT/learn"
  check "$name"
  taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "${args[@]}" "http://127.0.0.1:$PORT/" >/dev/null
  local b0 e0 c0 s0 t0 b1 e1 c1 s1 t1 wrk_j
  b0="$(busy_jiffies)"; e0="$(proc_jiffies "$ENVOY_PID")"; s0="$(steal_jiffies)"; t0="$(date +%s.%N)"
  c0="$([ -n "$COLLECTOR_PID" ] && proc_jiffies "$COLLECTOR_PID" || echo 0)"
  # `times` in the subshell: wrk's own CPU time (it is the subshell's only child).
  wrk_j="$( (taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WRK_REPORT" "${args[@]}" \
      "http://127.0.0.1:$PORT/" >"$wrk_out"; times) | awk -v hz="$HZ" 'NR==2 {
        split($1,u,/[ms]/); split($2,s,/[ms]/); print (u[1]*60+u[2]+s[1]*60+s[2])*hz}')"
  b1="$(busy_jiffies)"; e1="$(proc_jiffies "$ENVOY_PID")"; s1="$(steal_jiffies)"; t1="$(date +%s.%N)"
  c1="$([ -n "$COLLECTOR_PID" ] && proc_jiffies "$COLLECTOR_PID" || echo 0)"
  if [ -n "${TRACED[$name]:-}" ]; then
    # The tracer really ran and reached the collector (Envoy posts every few spans).
    local spans=""
    for _ in $(seq 50); do
      spans="$(curl -sf "$COLLECTOR/api/v2/traces?limit=1" || true)"
      [[ "$spans" == '[['* ]] && break
      sleep 0.2
    done
    [[ "$spans" == '[['* ]] || { echo "no span reached the collector during $name round $round" >&2; tail -20 "$log" >&2; exit 1; }
  fi
  stop_envoy
  stop_collector
  # wrk's numbers, from bench/wrk-report.lua's line (see there): KEY=VALUE pairs.
  local report
  report="$(grep '^wrk-report ' "$wrk_out" || true)"
  [ -n "$report" ] || { echo "wrk failed:" >&2; cat "$wrk_out" >&2; exit 1; }
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$report"; }
  # Failed requests: non-2xx responses and socket errors. A broken filter fails them all; a
  # handful in a million is the machine's and is reported, not fatal.
  local total failed
  total="$(field requests)"
  failed="$(( $(field non2xx) + $(field socket_errors) ))"
  if awk -v f="$failed" -v t="$total" 'BEGIN{exit !(f > t / 1000)}'; then
    echo "$failed of $total requests failed during $name round $round:" >&2
    cat "$wrk_out" >&2; tail -20 "$log" >&2; exit 1
  fi
  local rps p50 p99 noise steal cpu
  rps="$(field rps)"; p50="$(field p50_us)"; p99="$(field p99_us)"
  # Envoy's CPU time per request (all its threads): less sensitive to other processes than
  # requests/s, which drops with every time slice they take from Envoy's core.
  cpu="$(awk -v e="$((e1 - e0))" -v n="$total" -v hz="$HZ" 'BEGIN{printf "%.2f", (n > 0 ? e / hz * 1e6 / n : 0)}')"
  # CPU that neither Envoy, wrk nor the collector used during the run, as a % of one core: the
  # other processes.
  noise="$(awk -v b="$((b1 - b0 - (c1 - c0)))" -v e="$((e1 - e0))" -v w="$wrk_j" -v t0="$t0" -v t1="$t1" -v hz="$HZ" \
    'BEGIN{x=(b-e-w)/hz/(t1-t0)*100; if (x<0) x=0; printf "%.1f", x}')"
  steal="$(awk -v s="$((s1 - s0))" -v t0="$t0" -v t1="$t1" -v hz="$HZ" 'BEGIN{printf "%.1f", s/hz/(t1-t0)*100}')"
  M_RPS="$rps" M_P50="$p50" M_P99="$p99" M_CPU="$cpu" M_NOISE="$noise" M_STEAL="$steal" M_FAILED="$failed"
  printf '  round %s  %-38s %9.0f req/s  p50 %7.1f µs  p99 %7.1f µs  Envoy CPU %5.1f µs/req  (other processes %s%%, steal %s%% of a core; %s failed)\n' \
    "$round" "${LABEL[$name]}" "$rps" "$p50" "$p99" "$cpu" "$noise" "$steal" "$failed" >&2
}

# A measurement during which other processes took more than NOISE_LIMIT % of a core (the machine
# has two: they took it from Envoy or wrk) is taken again, at most RETRIES times in the whole run.
NOISE_LIMIT="${NOISE_LIMIT:-10}"
RETRIES="${RETRIES:-4}"
RETRIED=0
measure_quiet() { # NAME ROUND
  measure "$1" "$2"
  while awk -v n="$M_NOISE" -v l="$NOISE_LIMIT" 'BEGIN{exit !(n > l)}' && [ "$RETRIED" -lt "$RETRIES" ]; do
    RETRIED=$((RETRIED + 1))
    log "other processes took ${M_NOISE}% of a core: measuring again ($RETRIED of at most $RETRIES)"
    sleep 3
    measure "$1" "$2"
  done
  RPS[$1]+="$M_RPS "; P50[$1]+="$M_P50 "; P99[$1]+="$M_P99 "; CPU[$1]+="$M_CPU "
  NOISE+=("$M_NOISE"); STEAL+=("$M_STEAL"); ERRORS+=("$M_FAILED")
}

HTTP_TABLE=""
if [ -z "${SKIP_HTTP:-}" ]; then
  start_upstream
  log "HTTP: $ROUNDS rounds × ${#CONFIGS[@]} configurations, wrk -t1 -c$CONNECTIONS -d${DURATION}s (after ${WARMUP}s warm-up), Envoy on core $ENVOY_CPU, wrk on core $WRK_CPU"
  n=${#CONFIGS[@]}
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
      measure_quiet "${CONFIGS[$(((i + r - 1) % n))]}" "$r"
    done
  done
  med() { tr ' ' '\n' <<<"$1" | { grep . || true; } | median; }
  best() { tr ' ' '\n' <<<"$1" | { grep . || true; } | sort -g | tail -1; }
  # Each row against the references; "nan" when a reference was not measured (not in CONFIGS).
  # The tracer-hop rows are compared with the router alone and with router + tracer only: the
  # tracer's own work (a span per request, posted) is not what the floor and the no-op measure.
  # Each row against its reference (the floor of its kind of route, or the row below it on a
  # tracer hop), by requests/s and by Envoy's CPU per request; and the direct rows against the
  # no-op filter.
  HTTP_TABLE="| configuration | requests/s (median) | rounds | p50 µs | p99 µs | Envoy CPU µs/request | reference | × reference (requests/s) | × reference (CPU/request) | × no-op (b) |
| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"
  for name in "${CONFIGS[@]}"; do
    ref="${REF[$name]-floor}"
    [ "$name" != floor ] && [ "$name" != router ] && [ "$name" != noop ] || ref=""
    rounds="$(tr ' ' '\n' <<<"${RPS[$name]}" | grep . | awk '{printf "%s%.1fk", (NR>1?" / ":""), $1/1000}')"
    HTTP_TABLE+="
$(awk -v l="${LABEL[$name]}" -v r="$(med "${RPS[$name]}")" -v rr="$rounds" -v p50="$(med "${P50[$name]}")" \
      -v p99="$(med "${P99[$name]}")" -v cpu="$(med "${CPU[$name]}")" \
      -v rl="${ref:+${LABEL[$ref]:-$ref}}" -v rr_="$([ -z "$ref" ] || med "${RPS[$ref]:-}")" \
      -v rc="$([ -z "$ref" ] || med "${CPU[$ref]:-}")" \
      -v b="$(med "${RPS[noop]:-}")" -v up="${UPSTREAM[$name]:-}" \
      'function ratio(x, y) { return (y == "" || y == "nan" || y + 0 == 0) ? "n/a" : sprintf("%.3f", x / y) }
       BEGIN{printf "| %s | %.0f | %s | %.0f | %.0f | %.1f | %s | %s | %s | %s |", l, r, rr, p50, p99, cpu,
         (rl == "" ? "—" : rl), (rl == "" ? "—" : ratio(r, rr_)), (rl == "" ? "—" : ratio(rc, cpu)),
         (up ? "—" : ratio(r, b))}')"
  done
  summary() { sort -g | awk '{v[NR]=$1} END {printf "median %.1f%%, max %.1f%% of a core", (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2), v[NR]}'; }
  NOISE_SUMMARY="other processes $(printf '%s\n' "${NOISE[@]}" | summary); hypervisor steal $(printf '%s\n' "${STEAL[@]}" | summary); failed requests $(printf '%s\n' "${ERRORS[@]}" | awk '{n+=$1} END{print n+0}') in all runs; $RETRIED measurement(s) repeated for noise over $NOISE_LIMIT%"
  printf '\n%s\n\nNoise during the measurements: %s\n' "$HTTP_TABLE" "$NOISE_SUMMARY" >&2
  # The goals, stated plainly: every trace-inject row >= 0.95x its floor (>= 1.05x the tracer-hop
  # floor at 1 %), by requests/s and by Envoy's CPU per request.
  VERDICT="$(for name in "${TI_ROWS[@]}"; do
    ref="${GOAL_REF[$name]}"
    [ -n "${RPS[$name]:-}" ] && [ -n "${RPS[$ref]:-}" ] || continue
    awk -v l="${LABEL[$name]}" -v rl="${LABEL[$ref]}" -v r="$(med "${RPS[$name]}")" -v h="$(med "${RPS[$ref]}")" \
      -v c="$(med "${CPU[$name]}")" -v hc="$(med "${CPU[$ref]}")" -v g="${GOAL[$name]:-0.95}" \
      'BEGIN{x=r/h; y=hc/c
        printf "- %s: %.3f× %s by requests/s, %.3f× by CPU per request (goal ≥ %s: %s)\n", l, x, rl, y, g,
          (x>=g && y>=g ? "met" : (x>=g || y>=g ? "met by one measure" : "NOT met"))}'
  done)"
  printf '%s\n' "$VERDICT" >&2
fi

# ---------------------------------------------------------------------------------------------
# 4. Memory: Envoy's RssAnon per filter (bench/memory.sh), the same modules.
MEMORY_TABLE=""
if [ -z "${SKIP_MEMORY:-}" ]; then
  WASM="$WASM" NOOP_WASM="$NOOP_WASM" FLOOR_WASM="$FLOOR_WASM" OUT="$WORK/memory.md" bench/memory.sh >&2
  MEMORY_TABLE="$(cat "$WORK/memory.md")"
fi

# ---------------------------------------------------------------------------------------------
# 3. Sizes.
size_of() { stat -c %s "$1"; }
kib() { awk -v b="$1" 'BEGIN{printf "%.1f KiB", b/1024}'; }
SIZES="| module | bytes | |
| --- | ---: | ---: |
| trace-inject (dist/trace_inject.wasm) | $(size_of "$WASM") | $(kib "$(size_of "$WASM")") |
| no-op filter (dist/bench_noop.wasm) | $(size_of "$NOOP_WASM") | $(kib "$(size_of "$NOOP_WASM")") |
| job floor (dist/bench_floor.wasm) | $(size_of "$FLOOR_WASM") | $(kib "$(size_of "$FLOOR_WASM")") |"
printf '\n.wasm sizes (wasm-opt + wasm-strip, scripts/build-wasm.sh):\n%s\n' "$SIZES" >&2

LOAD_AFTER="$(loadavg)"
{
  echo "# trace-inject benchmark"
  echo
  echo "Written by \`make bench\` (bench/run.sh); re-run it to refresh. Absolute figures depend on the"
  echo "machine and on what else runs on it: compare the rows, measured side by side in one run."
  echo
  echo "- date: $START_DATE"
  echo "- machine: $(nproc) cores, $CPU_MODEL, $(uname -sr)"
  echo "- Envoy: $ENVOY_VERSION"
  echo "- load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
  echo "- trace-inject configuration: \`$PLUGIN_CONFIG\`; (j), (ja), (i), (i') \`{}\`; (g) \`${PLUGIN[export]}\`"
  echo
  echo "## Sizes"
  echo
  echo "$SIZES"
  if [ -n "$HTTP_TABLE" ]; then
    echo
    echo "## Requests through Envoy"
    echo
    echo "Envoy \`--concurrency 1\` pinned with \`taskset -c $ENVOY_CPU\`, a fresh Envoy per measurement;"
    echo "\`taskset -c $WRK_CPU wrk -t1 -c$CONNECTIONS -d${DURATION}s -s bench/wrk-report.lua\` (after a ${WARMUP} s"
    echo "warm-up); $ROUNDS rounds, configurations interleaved; medians of the rounds. Envoy CPU"
    echo "µs/request: the CPU time of all Envoy's threads during the run over the requests served; it"
    echo "moves less than requests/s when other processes take time from Envoy's core."
    echo "(h) is bench/floor: it reads the request header map once, adds the four context headers and"
    echo "looks up, then adds \`x-trace-id\`, with no logic: the limit for any proxy-wasm filter doing"
    echo "this job. (a)-(j) use a \`direct_response\` route; (ha)-(ja) and the tracer hop a route to an"
    echo "upstream Envoy answering directly on core $WRK_CPU (each measurement's first request teaches"
    echo "trace-inject the hop). (d) sends a valid B3 context (\`x-b3-traceid: $TRACE_ID\`,"
    echo "\`x-b3-spanid\`, \`x-b3-sampled: 1\`); (e) the same with a 31-digit trace id (malformed). (f) is"
    echo "bench/filters/inject.lua. The tracer hop is Envoy's Zipkin tracer as Istio configures it"
    echo "(bench/tracer/: the five workload custom tags, \`%TRACE_ID%\` as \`x-trace-id\`) at 1 % and"
    echo "100 %, posting to the devtools collector on core $COLLECTOR_CPU; (t) is bench/floor writing the"
    echo "five span-tag values on every request and looking up \`x-trace-id\`."
    echo "Noise during the measurements (CPU time neither Envoy, wrk nor the collector used; time the"
    echo "hypervisor took): $NOISE_SUMMARY."
    echo
    echo "$HTTP_TABLE"
    echo
    echo "Goals: every trace-inject row ≥ 0.95× the floor of its kind of route (h or ha); beside the"
    echo "tracer at Istio's 1 %, ≥ 1.05× the tracer-hop floor (t), and ≥ 0.95× it at 100 % (t')."
    echo
    echo "$VERDICT"
  fi
  if [ -n "$MEMORY_TABLE" ]; then
    echo
    echo "## Memory"
    echo
    echo "bench/memory.sh: Envoy's RssAnon (heap, V8's compiled code, the Wasm memories), 2 workers."
    echo "Goal: trace-inject ≤ the job floor + 4 MiB; export on ≤ 3 MiB more."
    echo
    echo "$MEMORY_TABLE"
  fi
  if [ -n "${INSTR_TABLE:-}" ]; then
    echo
    echo "## Instructions per request (pure path, native)"
    echo
    echo "\`valgrind --tool=callgrind\` on bench/percall (release profile: opt-level s, LTO), $ITERATIONS"
    echo "iterations of TraceHeaders::collect + propagate::decide + response_trace_id over the headers"
    echo "Envoy hands the filter for the requests above, minus the same loop doing nothing, divided by $ITERATIONS."
    echo "Host calls (reading the header map, each edit) are not included."
    echo
    echo "$INSTR_TABLE"
  fi
} >"$OUT"
log "wrote $OUT"
