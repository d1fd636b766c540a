#!/usr/bin/env bash
# Envoy's resident memory with each filter: what a sidecar pays per pod for a Wasm module.
#
#   bench/memory.sh [ROW...]
#
# ROW is one of
#   router            no HTTP filter but the router
#   noop              dist/bench_noop.wasm (the no-op proxy-wasm filter)
#   floor             dist/bench_floor.wasm (the job floor: this job's host calls, no logic)
#   default           $WASM (dist/trace_inject.wasm) with the default configuration `{}`
#   export            $WASM with `{"export":{"cluster":"collector"}}`: the filter's own spans,
#                     posted to the devtools collector on loopback
#   LABEL=FILE.wasm[@CONFIG]   any trace-inject build, CONFIG (JSON) default `{}`
# (default rows: router noop floor default export).
#
# For each worker count in WORKERS, RUNS rounds with the rows interleaved; each measurement is a
# fresh Envoy (--concurrency W): ready, SETTLE seconds, RssAnon read ("startup"); REQUESTS
# requests (a third to a route that goes upstream to the devtools echo, the rest to a
# direct_response route; curl, PARALLEL connections so both workers get some), SETTLE seconds,
# RssAnon read again ("after"). The table gives the median of the runs, in MiB, and each module's
# size, function count and largest function bodies (wasm-objdump), because V8 (which Envoy runs
# with --no-liftoff: every function compiled by TurboFan when the module loads) pays for a giant
# function body far more than its bytes.
#
# RssAnon (/proc/PID/status): Envoy's anonymous resident memory — heap, V8's code and zones, the
# Wasm linear memories. VmRSS would be dominated by the 100 MB mapped binary.
#
# UPDATES=N (ECDS): the wasm filter is delivered by a filesystem ECDS source, as istiod delivers a
# WasmPlugin; N live configuration updates (a new file renamed over the old one, each a different
# sampling_percent) are made during the REQUESTS, each awaited in Envoy's stats; RssAnon is also
# read after the first update ("after 1st update"). Use it with REQUESTS=100000 for the flatness
# check.
#
# Knobs: RUNS=3 REQUESTS=300 WORKERS="2" SETTLE=2 PARALLEL=4 UPDATES=0 WASM=dist/trace_inject.wasm
#   NOOP_WASM FLOOR_WASM ENVOY_BIN BASE_PORT (random by default; it and the 4 ports after it)
#   OUT=FILE (the table is also written there) TOP=3 (largest bodies shown)
# Needs: the .wasm files, Envoy (make envoy), the devtools (make devtools), wabt, curl.
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

ENVOY="${ENVOY_BIN:-$TOOLS/venv/bin/envoy}"
WASM="${WASM:-dist/trace_inject.wasm}"
NOOP_WASM="${NOOP_WASM:-dist/bench_noop.wasm}"
FLOOR_WASM="${FLOOR_WASM:-dist/bench_floor.wasm}"
DEVTOOLS="${DEVTOOLS:-${CARGO_TARGET_DIR:-$ROOT/target}/release/trace-inject-devtools}"
RUNS="${RUNS:-3}"
REQUESTS="${REQUESTS:-300}"
read -ra WORKER_COUNTS <<<"${WORKERS:-2}"
SETTLE="${SETTLE:-2}"
PARALLEL="${PARALLEL:-4}"
UPDATES="${UPDATES:-0}"
TOP="${TOP:-3}"
OUT="${OUT:-}"

apt_install wabt curl
[ -x "$ENVOY" ] || scripts/install-envoy.sh

# Random high ports (other agents, other benches): BASE..BASE+4 must be free.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_ports() {
  local b i ok
  for _ in $(seq 50); do
    b=$((20000 + RANDOM % 40000)); ok=1
    for i in 0 1 2 3 4; do port_free $((b + i)) || { ok=""; break; }; done
    [ -n "$ok" ] && { echo "$b"; return 0; }
  done
  echo "no free ports found" >&2; return 1
}
BASE="${BASE_PORT:-$(pick_ports)}"
PORT=$BASE ADMIN_PORT=$((BASE + 1)) ECHO_PORT=$((BASE + 2)) COLLECTOR_PORT=$((BASE + 3))
BASE_ID=$((BASE + 100000))
for p in $PORT $ADMIN_PORT $ECHO_PORT $COLLECTOR_PORT; do
  port_free "$p" || { echo "port $p is in use (BASE_PORT)" >&2; exit 1; }
done

# Rows: label, module (empty: router), plugin configuration, root_id.
LABELS=() MODULES=() CONFIGS=() ROOTS=()
add_row() { LABELS+=("$1"); MODULES+=("$2"); CONFIGS+=("$3"); ROOTS+=("$4"); }
EXPORT_CONFIG='{"export":{"cluster":"collector"}}'
ROW_ARGS=("$@"); [ ${#ROW_ARGS[@]} -gt 0 ] || ROW_ARGS=(router noop floor default export)
for a in "${ROW_ARGS[@]}"; do
  case "$a" in
    router) add_row "router only" "" "" "" ;;
    noop) add_row "no-op filter" "$NOOP_WASM" "" noop ;;
    floor) add_row "job floor" "$FLOOR_WASM" "" floor ;;
    default) add_row "trace-inject {}" "$WASM" '{}' trace-inject ;;
    export) add_row "trace-inject, export on" "$WASM" "$EXPORT_CONFIG" trace-inject ;;
    *=*)
      spec="${a#*=}"; file="${spec%%@*}"; cfg='{}'
      [[ "$spec" == *@* ]] && cfg="${spec#*@}"
      add_row "${a%%=*}" "$file" "$cfg" trace-inject ;;
    *) echo "unknown row '$a' (router noop floor default export LABEL=FILE.wasm[@CONFIG])" >&2; exit 2 ;;
  esac
done
for m in "${MODULES[@]}"; do
  [ -z "$m" ] || [ -f "$m" ] || { echo "$m is missing (make build; make dist/bench_noop.wasm dist/bench_floor.wasm)" >&2; exit 1; }
done
[ -x "$DEVTOOLS" ] || { echo "$DEVTOOLS is missing: make devtools" >&2; exit 1; }

WORK="$(mktemp -d /tmp/trace-inject-memory.XXXXXX)"
ENVOY_PID="" ECHO_PID="" COLLECTOR_PID=""
cleanup() {
  local rc=$?
  for p in "$ENVOY_PID" "$ECHO_PID" "$COLLECTOR_PID"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "logs: $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- module facts ------------------------------------------------------------------------------
# "bytes functions b1 b2 ...": defined functions and the TOP largest function bodies.
module_facts() {
  local f="$1" n sizes
  n="$(wasm-objdump -h "$f" | awk '$1 == "Function" {print $NF}')"
  sizes="$(wasm-objdump -x -j Code "$f" | awk '/ - func\[/ {for (i = 1; i <= NF; i++) if ($i ~ /^size=/) {sub("size=", "", $i); print $i}}' |
    sort -rn | head -"$TOP" | paste -sd' ')"
  echo "$(stat -c %s "$f") ${n:-0} $sizes"
}

# --- the Envoy configuration --------------------------------------------------------------------
yaml_quote() { local s="${1//\'/\'\'}"; printf "'%s'" "$s"; }
wasm_config() { # MODULE CONFIG ROOT INDENT
  local pad; pad="$(printf '%*s' "$4" '')"
  sed "s/^/$pad/" <<EOF
"@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
config:
  name: $3
  root_id: $3
  configuration:
    "@type": type.googleapis.com/google.protobuf.StringValue
    value: $(yaml_quote "${2:-}")
  failure_policy: FAIL_OPEN
  vm_config:
    vm_id: $3
    runtime: envoy.wasm.runtime.v8
    code: {local: {filename: "$(realpath -m "$1")"}}
EOF
}
ECDS_DIR="$WORK/ecds"
ecds_publish() { # MODULE CONFIG ROOT: a new file renamed over the old one, as istiod's agent does
  mkdir -p "$ECDS_DIR"
  {
    echo "resources:"
    echo "- \"@type\": type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
    echo "  name: $3"
    echo "  typed_config:"
    wasm_config "$1" "$2" "$3" 4
  } >"$ECDS_DIR/.filter.yaml.tmp"
  mv "$ECDS_DIR/.filter.yaml.tmp" "$ECDS_DIR/filter.yaml"
}
envoy_config() { # MODULE CONFIG ROOT -> config path
  local out="$WORK/envoy.yaml"
  {
    cat <<EOF
# ECDS (UPDATES) needs a node id and cluster.
node: {id: memory-bench, cluster: memory-bench}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: $ADMIN_PORT}}
static_resources:
  listeners:
  - name: memory
    address: {socket_address: {address: 127.0.0.1, port_value: $PORT}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: memory
          codec_type: HTTP1
          route_config:
            virtual_hosts:
            - name: memory
              domains: ["*"]
              routes:
              - match: {prefix: "/upstream"}
                route: {cluster: echo}
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: "ok\n"}}
          http_filters:
EOF
    if [ -n "$1" ] && [ "$UPDATES" -gt 0 ]; then
      cat <<EOF
          - name: $3
            config_discovery:
              config_source:
                path_config_source:
                  path: $ECDS_DIR/filter.yaml
                  watched_directory: {path: $ECDS_DIR}
              type_urls: ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]
EOF
    elif [ -n "$1" ]; then
      echo "          - name: $3"
      echo "            typed_config:"
      wasm_config "$1" "$2" "$3" 14
    fi
    cat <<EOF
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: echo
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: echo
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $ECHO_PORT}}}
  - name: collector
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: collector
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $COLLECTOR_PORT}}}
EOF
  } >"$out"
  echo "$out"
}

# --- processes -----------------------------------------------------------------------------------
wait_http() { # URL PID LOG WHAT
  for _ in $(seq 200); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  echo "$4 did not start:" >&2; tail -30 "$3" >&2; exit 1
}
"$DEVTOOLS" echo --port "$ECHO_PORT" -q >"$WORK/echo.log" 2>&1 &
ECHO_PID=$!
"$DEVTOOLS" collector --port "$COLLECTOR_PORT" -q >"$WORK/collector.log" 2>&1 &
COLLECTOR_PID=$!
wait_http "http://127.0.0.1:$ECHO_PORT/" "$ECHO_PID" "$WORK/echo.log" "the echo upstream"
wait_http "http://127.0.0.1:$COLLECTOR_PORT/health" "$COLLECTOR_PID" "$WORK/collector.log" "the collector"

rss_anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
stat_value() { # NAME: a counter or gauge from Envoy's admin
  curl -sf "http://127.0.0.1:$ADMIN_PORT/stats?filter=^$1\$" | awk -F': ' 'NR==1 {print $2}'
}

# send N: N requests, a third of them upstream; fails unless every one answered 200.
send() {
  local n="$1" up direct codes bad
  up=$((n / 3)); direct=$((n - up))
  local -a urls=()
  [ "$direct" -gt 0 ] && urls+=(-o /dev/null "http://127.0.0.1:$PORT/direct/[1-$direct]")
  [ "$up" -gt 0 ] && urls+=(-o /dev/null "http://127.0.0.1:$PORT/upstream/[1-$up]")
  codes="$(curl -s --no-progress-meter -Z --parallel-max "$PARALLEL" -w '%{http_code}\n' "${urls[@]}")"
  bad="$(grep -vc '^200$' <<<"$codes" || true)"
  [ "$bad" -eq 0 ] || { echo "$bad of $n requests did not answer 200" >&2; sort <<<"$codes" | uniq -c >&2; exit 1; }
}

start_envoy() { # CONFIG WORKERS LOG
  "$ENVOY" -c "$1" --concurrency "$2" --base-id "$BASE_ID" --disable-hot-restart -l warning \
    >"$3" 2>&1 &
  ENVOY_PID=$!
  wait_http "http://127.0.0.1:$ADMIN_PORT/ready" "$ENVOY_PID" "$3" "Envoy"
}
stop_envoy() {
  kill "$ENVOY_PID" 2>/dev/null || true
  wait "$ENVOY_PID" 2>/dev/null || true
  ENVOY_PID=""
}

# The filter is in the chain and did its job: x-trace-id on a response (trace-inject, floor),
# spans at the collector (export).
check() { # ROW_INDEX
  local i="$1" resp
  # trace-inject tells nothing on the first request that goes upstream (it learns the hop from
  # it): the second one is told.
  curl -s -o /dev/null "http://127.0.0.1:$PORT/upstream/learn"
  resp="$(curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/upstream/check" | tr -d '\r')"
  local xt; xt="$(awk 'tolower($1)=="x-trace-id:" {print $2}' <<<"$resp")"
  case "${ROOTS[$i]}" in
    ""|noop) [ -z "$xt" ] || { echo "${LABELS[$i]}: unexpected x-trace-id" >&2; exit 1; } ;;
    *) if [[ "${CONFIGS[$i]}" != *response_header* ]]; then
         [[ "$xt" =~ ^[0-9a-f]{32}$ ]] || { echo "${LABELS[$i]}: no x-trace-id (filter not running?)" >&2; echo "$resp" >&2; exit 1; }
       fi ;;
  esac
}

# One measurement; sets M_START M_AFTER M_UPD1 (KiB) and M_WORKERS (workers that took connections).
measure() { # ROW_INDEX WORKERS RUN
  local i="$1" w="$2" r="$3" cfg log
  log="$WORK/envoy-$i-$w-$r.log"
  [ "$UPDATES" -gt 0 ] && [ -n "${MODULES[$i]}" ] && ecds_publish "${MODULES[$i]}" "${CONFIGS[$i]}" "${ROOTS[$i]}"
  cfg="$(envoy_config "${MODULES[$i]}" "${CONFIGS[$i]}" "${ROOTS[$i]}")"
  start_envoy "$cfg" "$w" "$log"
  sleep "$SETTLE"
  M_START="$(rss_anon_kib "$ENVOY_PID")"
  check "$i"
  M_UPD1=""
  if [ "$UPDATES" -gt 0 ] && [ -n "${MODULES[$i]}" ]; then
    local per=$((REQUESTS / UPDATES)) u reload0 cfg_u base_cfg="${CONFIGS[$i]}"
    [ -n "$base_cfg" ] || base_cfg="{}"
    for ((u = 1; u <= UPDATES; u++)); do
      reload0="$(stat_value "extension_config_discovery.http_filter.${ROOTS[$i]}.config_reload")"
      # The same settings with another sampling_percent: a real reconfiguration each time.
      cfg_u="$(sed "s/^{/{\"sampling_percent\":$((u % 100)),/; s/,}\$/}/" <<<"$base_cfg")"
      ecds_publish "${MODULES[$i]}" "$cfg_u" "${ROOTS[$i]}"
      for _ in $(seq 100); do
        [ "$(stat_value "extension_config_discovery.http_filter.${ROOTS[$i]}.config_reload")" -gt "$reload0" ] && break
        sleep 0.05
      done
      [ "$(stat_value "extension_config_discovery.http_filter.${ROOTS[$i]}.config_reload")" -gt "$reload0" ] ||
        { echo "ECDS update $u was not applied" >&2; tail -20 "$log" >&2; exit 1; }
      send "$per"
      [ "$u" -eq 1 ] && { sleep "$SETTLE"; M_UPD1="$(rss_anon_kib "$ENVOY_PID")"; }
    done
    local fails; fails="$(stat_value "extension_config_discovery.http_filter.${ROOTS[$i]}.config_fail")"
    [ "${fails:-0}" -eq 0 ] || { echo "ECDS: $fails updates rejected" >&2; exit 1; }
  else
    send "$REQUESTS"
  fi
  sleep "$SETTLE"
  M_AFTER="$(rss_anon_kib "$ENVOY_PID")"
  M_WORKERS="$(curl -sf "http://127.0.0.1:$ADMIN_PORT/stats?filter=^listener\\.127\\.0\\.0\\.1_$PORT\\.worker_[0-9]+\\.downstream_cx_total\$" |
    awk -F': ' '$2 > 0 {n++} END {print n+0}')"
  # tcmalloc's view (Envoy's admin /memory): live bytes, and bytes freed but kept (page heap
  # free + thread caches), which RssAnon counts as well.
  local mem; mem="$(curl -sf "http://127.0.0.1:$ADMIN_PORT/memory" || true)"
  jfield() { sed -n "s/.*\"$1\": *\"\{0,1\}\([0-9]*\).*/\1/p" <<<"$mem" | head -1; }
  M_ALLOC="$(jfield allocated)"
  M_KEPT="$(( $(jfield pageheap_free) + $(jfield total_thread_cache) ))"
  if [ "${CONFIGS[$i]}" = "$EXPORT_CONFIG" ] || [[ "${CONFIGS[$i]}" == *'"export"'* ]]; then
    curl -sf "http://127.0.0.1:$COLLECTOR_PORT/api/v2/traces?limit=1" | grep -q '^\[\[' ||
      { echo "${LABELS[$i]}: no span reached the collector" >&2; exit 1; }
  fi
  stop_envoy
  printf '  %-40s W=%s run %s: RssAnon startup %6.1f MiB, after %6.1f MiB%s (workers served: %s)\n' \
    "${LABELS[$i]}" "$w" "$r" "$(awk -v k="$M_START" 'BEGIN{print k/1024}')" "$(awk -v k="$M_AFTER" 'BEGIN{print k/1024}')" \
    "$([ -n "$M_UPD1" ] && awk -v k="$M_UPD1" 'BEGIN{printf ", after 1st update %.1f MiB", k/1024}')" "$M_WORKERS/$w" >&2
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

log "Envoy $("$ENVOY" --version 2>/dev/null | grep -o '/1\.[0-9.]*/' | tr -d /), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); ports $BASE..$((BASE + 3)), base-id $BASE_ID"
log "rows: ${LABELS[*]}; workers: ${WORKER_COUNTS[*]}; $RUNS runs; $REQUESTS requests$([ "$UPDATES" -gt 0 ] && echo ", $UPDATES ECDS updates")"
declare -A START=() AFTER=() UPD1=() ALLOC=() KEPT=()
n=${#LABELS[@]}
for w in "${WORKER_COUNTS[@]}"; do
  for ((r = 1; r <= RUNS; r++)); do
    for ((k = 0; k < n; k++)); do
      i=$(((k + r - 1) % n))
      measure "$i" "$w" "$r"
      START[$i,$w]+="$M_START " AFTER[$i,$w]+="$M_AFTER " UPD1[$i,$w]+="${M_UPD1} "
      ALLOC[$i,$w]+="$((M_ALLOC / 1024)) " KEPT[$i,$w]+="$((M_KEPT / 1024)) "
    done
  done
done

# The job floor's median (2 workers or the first count) is the reference when it was measured.
FLOOR_I=""
for ((i = 0; i < n; i++)); do [ "${ROOTS[$i]}" = floor ] && FLOOR_I=$i; done
head="| row | .wasm bytes | functions | largest function bodies (bytes) |"
sep="| --- | ---: | ---: | --- |"
for w in "${WORKER_COUNTS[@]}"; do
  head+=" RssAnon MiB, $w worker(s): startup | after $REQUESTS req | of which tcmalloc live / freed-but-kept |"
  sep+=" ---: | ---: | ---: |"
  [ "$UPDATES" -gt 0 ] && { head+=" after 1st update |"; sep+=" ---: |"; }
  [ -n "$FLOOR_I" ] && { head+=" − job floor |"; sep+=" ---: |"; }
done
TABLE="$head
$sep"
for ((i = 0; i < n; i++)); do
  if [ -n "${MODULES[$i]}" ]; then
    read -r bytes funcs bodies <<<"$(module_facts "${MODULES[$i]}")"
    bodies="${bodies// /, }"
  else bytes="—" funcs="—" bodies="—"; fi
  label="${LABELS[$i]}"
  if [ -n "${MODULES[$i]}" ] && [ "${ROOTS[$i]}" = trace-inject ]; then
    extra=""
    [ "${CONFIGS[$i]}" = '{}' ] || [ "${CONFIGS[$i]}" = "$EXPORT_CONFIG" ] || extra=" \`${CONFIGS[$i]}\`"
    label+=" (\`$(basename "${MODULES[$i]}")\`$extra)"
  fi
  row="| $label | $bytes | $funcs | $bodies |"
  for w in "${WORKER_COUNTS[@]}"; do
    s="$(median <<<"${START[$i,$w]}")"; a="$(median <<<"${AFTER[$i,$w]}")"
    row+=" $(mib "$s") | $(mib "$a") | $(mib "$(median <<<"${ALLOC[$i,$w]}")") / $(mib "$(median <<<"${KEPT[$i,$w]}")") |"
    [ "$UPDATES" -gt 0 ] && row+=" $( [ -n "${MODULES[$i]}" ] && mib "$(median <<<"${UPD1[$i,$w]}")" || echo —) |"
    if [ -n "$FLOOR_I" ]; then
      f="$(median <<<"${AFTER[$FLOOR_I,$w]}")"
      row+=" $(awk -v a="$a" -v f="$f" 'BEGIN{printf "%+.1f", (a-f)/1024}') |"
    fi
  done
  TABLE+="
$row"
done
UPD_TXT=""; [ "$UPDATES" -eq 0 ] || UPD_TXT=", with $UPDATES ECDS updates among them"
NOTE="Envoy $("$ENVOY" --version 2>/dev/null | grep -o '/1\.[0-9.]*/' | tr -d /), $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg); RssAnon median of $RUNS fresh Envoys per row, read ${SETTLE}s after ready (startup) and ${SETTLE}s after $REQUESTS requests (a third upstream)$UPD_TXT."
printf '\n%s\n\n%s\n' "$NOTE" "$TABLE"
[ -z "$OUT" ] || printf '%s\n\n%s\n' "$NOTE" "$TABLE" >"$OUT"
