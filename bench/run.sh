#!/usr/bin/env bash
# make bench: what trace-inject costs, side by side, in one run; writes bench/results.md.
#
#   1. Instructions per request of the pure per-request path (TraceHeaders::collect +
#      propagate::decide + formatting), native, counted by valgrind --tool=callgrind.
#   2. Requests/s and latency through a real Envoy (one worker, pinned to one core) driven by wrk
#      (pinned to the other core), on a direct_response route, for:
#        a router   the router alone
#        b noop     a proxy-wasm Rust filter that does nothing (bench/noop): the physical limit
#        c inject   trace-inject, no incoming context (a new trace: 6 request edits + x-trace-id)
#        d propagate trace-inject, a valid B3 context (only traceparent added)
#        e repair   trace-inject, a malformed B3 context (a new trace replaces it)
#        f lua      an Envoy Lua filter doing (c)'s header work (bench/filters/inject.lua)
#      ROUNDS rounds, the configurations interleaved (each round starts one later), a fresh Envoy
#      per measurement so each filter is alone on its core; the median round is reported.
#   3. The .wasm sizes.
#
# Needs the .wasm files and the native driver built (make bench does that). Knobs (environment):
#   ROUNDS=3 DURATION=10 WARMUP=1 CONNECTIONS=16 ITERATIONS=20000 BENCH_PORT=18000
#   PLUGIN_CONFIG='{"tracer":"none"}' OUT=bench/results.md ENVOY_CPU=0 WRK_CPU=1
#   CONFIGS="router noop inject propagate repair lua" (a subset, in this order) SKIP_HTTP=1 SKIP_INSTR=1
#   NOISE_LIMIT=10 RETRIES=4 (a measurement while other processes took more than NOISE_LIMIT % of a
#   core is repeated, at most RETRIES times per run)
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

ENVOY="${ENVOY_BIN:-$TOOLS/venv/bin/envoy}"
WASM="${WASM:-dist/trace_inject.wasm}"
NOOP_WASM="${NOOP_WASM:-dist/bench_noop.wasm}"
PERCALL="${PERCALL:-${CARGO_TARGET_DIR:-$ROOT/target}/release/trace-inject-percall}"
LUA="bench/filters/inject.lua"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-1}"
CONNECTIONS="${CONNECTIONS:-16}"
ITERATIONS="${ITERATIONS:-20000}"
PORT="${BENCH_PORT:-18000}"
ADMIN_PORT=$((PORT + 1))
# This Envoy has no tracer: `tracer: none` is the setting for such a hop, and what `auto` (the
# default) settles on once a request has gone upstream, which never happens on a direct_response
# route (auto would stay undecided, writing span tags and re-reading headers on every request).
PLUGIN_CONFIG="${PLUGIN_CONFIG:-}"; [ -n "$PLUGIN_CONFIG" ] || PLUGIN_CONFIG='{"tracer":"none"}'
OUT="${OUT:-bench/results.md}"
ENVOY_CPU="${ENVOY_CPU:-0}"
WRK_CPU="${WRK_CPU:-1}"

apt_install wrk valgrind curl util-linux
scripts/install-envoy.sh
for f in "$WASM" "$NOOP_WASM" "$PERCALL"; do
  [ -e "$f" ] || { echo "$f is missing: run 'make bench' (it builds it)" >&2; exit 1; }
done
for p in "$PORT" "$ADMIN_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p is in use (set BENCH_PORT to another pair)" >&2; exit 1
  fi
done

WORK="$(mktemp -d /tmp/trace-inject-bench.XXXXXX)"
ENVOY_PID=""
cleanup() {
  local rc=$?
  if [ -n "$ENVOY_PID" ]; then kill "$ENVOY_PID" 2>/dev/null || true; wait "$ENVOY_PID" 2>/dev/null || true; fi
  # Logs and raw wrk output are kept only when something failed.
  if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else echo "logs: $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The headers of cases d and e, the same the native driver uses (bench/percall/src/main.rs).
TRACE_ID=463ac35c9f6413ad48485a3953bb6124
SPAN_ID=a2fb4a1d1a96d312
VALID_B3="x-b3-traceid: $TRACE_ID|x-b3-spanid: $SPAN_ID|x-b3-sampled: 1"
MALFORMED_B3="x-b3-traceid: ${TRACE_ID^^}|x-b3-spanid: $SPAN_ID|x-b3-sampled: 1"

read -ra CONFIGS <<<"${CONFIGS:-router noop inject propagate repair lua export}"
declare -A LABEL=(
  [router]="(a) router only"
  [noop]="(b) no-op proxy-wasm filter"
  [inject]="(c) trace-inject: inject"
  [propagate]="(d) trace-inject: propagate valid B3"
  [repair]="(e) trace-inject: repair malformed B3"
  [lua]="(f) Lua filter: inject"
  [export]="(g) trace-inject: inject + export own spans"
)
declare -A SNIPPET=([router]="" [noop]=noop [inject]=trace-inject [propagate]=trace-inject
  [repair]=trace-inject [lua]=lua [export]=trace-inject)
declare -A HEADERS=([router]="" [noop]="" [inject]="" [propagate]="$VALID_B3"
  [repair]="$MALFORMED_B3" [lua]="" [export]="")
# (g): the filter's own span per request, posted to the `zipkin` cluster, where nothing listens
# (connection refused): the filter's cost of building, buffering, encoding and posting spans,
# without a collector competing for the two cores.
ZIPKIN_PORT=$((PORT + 2))
declare -A PLUGIN=(
  [export]='{"tracer":"none","export":{"cluster":"zipkin","flush_interval_ms":100,"batch_size":1000,"buffer_limit":10000}}'
)

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
  if [ -z "$snippet" ]; then
    sed '/#@HTTP_FILTERS@/d' bench/envoy-bench.yaml >"$out"
  else
    sed -e "/#@HTTP_FILTERS@/{r bench/filters/$snippet.yaml" -e 'd}' bench/envoy-bench.yaml >"$out"
  fi
  # YAML single quotes double a quote; sed's replacement escapes \ & and the | delimiter.
  local pcfg="${PLUGIN[$name]:-$PLUGIN_CONFIG}"
  local pc="${pcfg//\'/\'\'}"
  pc="$(sed -e 's/[\\&|]/\\&/g' <<<"$pc")"
  sed -i -e "s|@PORT@|$PORT|; s|@ADMIN_PORT@|$ADMIN_PORT|; s|@ZIPKIN_PORT@|$ZIPKIN_PORT|" \
    -e "s|@WASM@|$(abs "$WASM")|; s|@NOOP_WASM@|$(abs "$NOOP_WASM")|; s|@LUA@|$(abs "$LUA")|" \
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

curl_headers() { # NAME -> curl -H arguments
  local -a out=() hs=()
  [ -n "${HEADERS[$1]}" ] && IFS='|' read -ra hs <<<"${HEADERS[$1]}"
  for h in "${hs[@]}"; do out+=(-H "$h"); done
  [ ${#out[@]} -eq 0 ] || printf '%s\n' "${out[@]}"
}

# Before measuring: one request to /check, which echoes the request headers as the filters left
# them, proving the filter under test is in the chain and does its job.
check() { # NAME
  local name="$1" resp; local -a args=()
  mapfile -t args < <(curl_headers "$name")
  resp="$(curl -s -D - -o /dev/null "${args[@]}" "http://127.0.0.1:$PORT/check" | tr -d '\r')"
  hdr() { awk -v n="$1:" 'tolower($1)==n {print $2; exit}' <<<"$resp"; }
  local status tid sid tp xt
  status="$(awk 'NR==1{print $2}' <<<"$resp")"
  tid="$(hdr seen-x-b3-traceid)"; sid="$(hdr seen-x-b3-spanid)"; tp="$(hdr seen-traceparent)"
  xt="$(hdr x-trace-id)"
  local fail=""
  [ "$status" = 200 ] || fail="status $status"
  case "$name" in
    router|noop)
      [ -z "$xt" ] && [ -z "$tid" ] && [ -z "$tp" ] || fail="unexpected trace headers (x-trace-id=$xt x-b3-traceid=$tid)" ;;
    inject|repair|lua|export)
      [[ "$tid" =~ ^[0-9a-f]{32}$ ]] && [[ "$sid" =~ ^[0-9a-f]{16}$ ]] &&
        [ "$tp" = "00-$tid-$sid-01" ] && [ "$xt" = "$tid" ] && [ "$tid" != "$TRACE_ID" ] ||
        fail="not a new trace: x-b3-traceid=$tid x-b3-spanid=$sid traceparent=$tp x-trace-id=$xt" ;;
    propagate)
      [ "$tid" = "$TRACE_ID" ] && [ "$sid" = "$SPAN_ID" ] && [ "$tp" = "00-$TRACE_ID-$SPAN_ID-01" ] &&
        [ "$xt" = "$TRACE_ID" ] ||
        fail="not propagated: x-b3-traceid=$tid traceparent=$tp x-trace-id=$xt" ;;
  esac
  if [ -n "$fail" ]; then echo "check of $name failed: $fail" >&2; echo "$resp" >&2; exit 1; fi
}

to_us() { # "185.00us" | "1.23ms" | "1.00s" -> microseconds
  awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n}'
}

declare -A RPS=() P50=() P99=()
NOISE=() STEAL=() ERRORS=()
measure() { # NAME ROUND
  local name="$1" round="$2" cfg log wrk_out; local -a args=()
  cfg="$(config_file "$name")"; log="$WORK/envoy-$name-$round.log"; wrk_out="$WORK/wrk-$name-$round.txt"
  mapfile -t args < <(curl_headers "$name")
  start_envoy "$cfg" "$log"
  check "$name"
  taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "${args[@]}" "http://127.0.0.1:$PORT/" >/dev/null
  local b0 e0 s0 t0 b1 e1 s1 t1 wrk_j
  b0="$(busy_jiffies)"; e0="$(proc_jiffies "$ENVOY_PID")"; s0="$(steal_jiffies)"; t0="$(date +%s.%N)"
  # `times` in the subshell: wrk's own CPU time (it is the subshell's only child).
  wrk_j="$( (taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${args[@]}" \
      "http://127.0.0.1:$PORT/" >"$wrk_out"; times) | awk -v hz="$HZ" 'NR==2 {
        split($1,u,/[ms]/); split($2,s,/[ms]/); print (u[1]*60+u[2]+s[1]*60+s[2])*hz}')"
  b1="$(busy_jiffies)"; e1="$(proc_jiffies "$ENVOY_PID")"; s1="$(steal_jiffies)"; t1="$(date +%s.%N)"
  stop_envoy
  grep -q '^Requests/sec' "$wrk_out" || { echo "wrk failed:" >&2; cat "$wrk_out" >&2; exit 1; }
  # Failed requests: non-2xx responses and socket errors. A broken filter fails them all; a
  # handful in a million is the machine's and is reported, not fatal.
  local total failed
  total="$(awk '/requests in/{print $1}' "$wrk_out")"
  failed="$(awk '/Non-2xx/{n+=$NF} /Socket errors/{gsub(/,/,""); n+=$4+$6+$8+$10} END{print n+0}' "$wrk_out")"
  if awk -v f="$failed" -v t="$total" 'BEGIN{exit !(f > t / 1000)}'; then
    echo "$failed of $total requests failed during $name round $round:" >&2
    cat "$wrk_out" >&2; tail -20 "$log" >&2; exit 1
  fi
  local rps p50 p99 noise steal
  rps="$(awk '/^Requests\/sec/{print $2}' "$wrk_out")"
  p50="$(to_us "$(awk '$1=="50%"{print $2}' "$wrk_out")")"
  p99="$(to_us "$(awk '$1=="99%"{print $2}' "$wrk_out")")"
  # CPU that neither Envoy nor wrk used during the run, as a % of one core: the other processes.
  noise="$(awk -v b="$((b1 - b0))" -v e="$((e1 - e0))" -v w="$wrk_j" -v t0="$t0" -v t1="$t1" -v hz="$HZ" \
    'BEGIN{x=(b-e-w)/hz/(t1-t0)*100; if (x<0) x=0; printf "%.1f", x}')"
  steal="$(awk -v s="$((s1 - s0))" -v t0="$t0" -v t1="$t1" -v hz="$HZ" 'BEGIN{printf "%.1f", s/hz/(t1-t0)*100}')"
  M_RPS="$rps" M_P50="$p50" M_P99="$p99" M_NOISE="$noise" M_STEAL="$steal" M_FAILED="$failed"
  printf '  round %s  %-38s %9.0f req/s  p50 %7.1f µs  p99 %7.1f µs  (other processes %s%%, steal %s%% of a core; %s failed)\n' \
    "$round" "${LABEL[$name]}" "$rps" "$p50" "$p99" "$noise" "$steal" "$failed" >&2
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
  RPS[$1]+="$M_RPS "; P50[$1]+="$M_P50 "; P99[$1]+="$M_P99 "
  NOISE+=("$M_NOISE"); STEAL+=("$M_STEAL"); ERRORS+=("$M_FAILED")
}

HTTP_TABLE=""
if [ -z "${SKIP_HTTP:-}" ]; then
  log "HTTP: $ROUNDS rounds × ${#CONFIGS[@]} configurations, wrk -t1 -c$CONNECTIONS -d${DURATION}s (after ${WARMUP}s warm-up), Envoy on core $ENVOY_CPU, wrk on core $WRK_CPU"
  n=${#CONFIGS[@]}
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
      measure_quiet "${CONFIGS[$(((i + r - 1) % n))]}" "$r"
    done
  done
  med() { tr ' ' '\n' <<<"$1" | { grep . || true; } | median; }
  ref_noop="$(med "${RPS[noop]:-}")"; ref_router="$(med "${RPS[router]:-}")"
  HTTP_TABLE="| configuration | requests/s (median) | rounds | p50 µs | p99 µs | × no-op (b) | × router (a) | best round: × no-op (b) |
| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
  best() { tr ' ' '\n' <<<"$1" | { grep . || true; } | sort -g | tail -1; }
  best_noop="$(best "${RPS[noop]:-}")"
  for name in "${CONFIGS[@]}"; do
    rps="$(med "${RPS[$name]}")"
    rounds="$(tr ' ' '\n' <<<"${RPS[$name]}" | grep . | awk '{printf "%s%.1fk", (NR>1?" / ":""), $1/1000}')"
    HTTP_TABLE+="
$(awk -v l="${LABEL[$name]}" -v r="$rps" -v rr="$rounds" -v p50="$(med "${P50[$name]}")" \
      -v p99="$(med "${P99[$name]}")" -v b="$ref_noop" -v a="$ref_router" \
      -v x="$(best "${RPS[$name]}")" -v bb="$best_noop" \
      'function ratio(x, y) { return (y == "nan" || y + 0 == 0) ? "n/a" : sprintf("%.3f", x / y) }
       BEGIN{printf "| %s | %.0f | %s | %.0f | %.0f | %s | %s | %s |", l, r, rr, p50, p99, ratio(r, b), ratio(r, a), ratio(x, bb)}')"
  done
  summary() { sort -g | awk '{v[NR]=$1} END {printf "median %.1f%%, max %.1f%% of a core", (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2), v[NR]}'; }
  NOISE_SUMMARY="other processes $(printf '%s\n' "${NOISE[@]}" | summary); hypervisor steal $(printf '%s\n' "${STEAL[@]}" | summary); failed requests $(printf '%s\n' "${ERRORS[@]}" | awk '{n+=$1} END{print n+0}') in all runs; $RETRIED measurement(s) repeated for noise over $NOISE_LIMIT%"
  printf '\n%s\n\nNoise during the measurements: %s\n' "$HTTP_TABLE" "$NOISE_SUMMARY" >&2
  # The issue's goal, stated plainly.
  VERDICT="$(for name in inject propagate repair export; do
    [ -n "${RPS[$name]:-}" ] && [ -n "${RPS[noop]:-}" ] && [ -n "${RPS[lua]:-}" ] || continue
    awk -v l="${LABEL[$name]}" -v r="$(med "${RPS[$name]}")" -v b="$ref_noop" -v lua="$(med "${RPS[lua]}")" \
      -v goal="$([ "$name" = export ] && echo 0.90 || echo 0.95)" \
      'BEGIN{printf "- %s: %.3f× the no-op filter (goal ≥ %s: %s), %.3f× Lua (%s)\n", l, r/b, goal, (r/b>=goal?"met":"NOT met"), r/lua, (r>lua?"ahead":"NOT ahead")}'
  done)"
  printf '%s\n' "$VERDICT" >&2
fi

# ---------------------------------------------------------------------------------------------
# 3. Sizes.
size_of() { stat -c %s "$1"; }
kib() { awk -v b="$1" 'BEGIN{printf "%.1f KiB", b/1024}'; }
SIZES="| module | bytes | |
| --- | ---: | ---: |
| trace-inject (dist/trace_inject.wasm) | $(size_of "$WASM") | $(kib "$(size_of "$WASM")") |
| no-op filter (dist/bench_noop.wasm) | $(size_of "$NOOP_WASM") | $(kib "$(size_of "$NOOP_WASM")") |"
printf '\n.wasm sizes (wasm-opt -Oz + wasm-strip, scripts/build-wasm.sh):\n%s\n' "$SIZES" >&2

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
  echo "- trace-inject configuration: \`$PLUGIN_CONFIG\`"
  echo
  echo "## Sizes"
  echo
  echo "$SIZES"
  if [ -n "$HTTP_TABLE" ]; then
    echo
    echo "## Requests through Envoy"
    echo
    echo "Envoy \`--concurrency 1\` pinned with \`taskset -c $ENVOY_CPU\`, a fresh Envoy per measurement;"
    echo "\`taskset -c $WRK_CPU wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency\` (after a ${WARMUP} s warm-up) on a"
    echo "\`direct_response\` route; $ROUNDS rounds, configurations interleaved; medians of the rounds (the"
    echo "last column compares each configuration's best round with the no-op filter's best round:"
    echo "interference only ever slows a run down)."
    echo "(d) sends a valid B3 context (\`x-b3-traceid: $TRACE_ID\`, \`x-b3-spanid\`, \`x-b3-sampled: 1\`);"
    echo "(e) the same with the trace id in upper case (malformed). (f) is bench/filters/inject.lua."
    echo "Noise during the measurements (CPU time neither Envoy nor wrk used; time the hypervisor"
    echo "took): $NOISE_SUMMARY."
    echo
    echo "$HTTP_TABLE"
    echo
    echo "Goal (issue \"Fast and unbreakable\"): (c)–(e) ≥ 0.95× the no-op filter, ahead of Lua."
    echo
    echo "$VERDICT"
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
