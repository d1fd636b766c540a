#!/usr/bin/env bash
# Fails when a function body of the module is larger than the limit (default 8192 bytes).
#   check-wasm.sh FILE.wasm [LIMIT_BYTES]
#
# Why: Envoy's V8 compiles every function of a module with TurboFan when it loads it (no Liftoff,
# no lazy compilation: proxy-wasm-cpp-host), once per Envoy, and TurboFan's memory for a function
# grows faster than the function: the heap it reaches stays resident in Envoy (tcmalloc keeps
# it). trace-inject built with wasm-opt's single-caller inlining had a 30,543-byte function (the
# whole configuration parser folded into on_configure) and cost 45.4 MiB RssAnon against 33.4
# without, every other body under 5.5 KB (2 workers; bench/memory.sh, docs/memory.md). The
# filter's largest body is ~7.3 KB (on_log with the log line inlined); raise the limit only with
# a bench/memory.sh run that shows the larger body costs no memory.
source "$(dirname "$0")/lib.sh"
FILE="${1:?usage: check-wasm.sh FILE.wasm [LIMIT_BYTES]}"
LIMIT="${2:-8192}"
apt_install wabt
# "index size" of every function body, largest first.
bodies="$(wasm-objdump -x -j Code "$FILE" |
  sed -n 's/^ - func\[\([0-9]*\)\] size=\([0-9]*\).*/\1 \2/p' | sort -k2,2 -rn)"
[ -n "$bodies" ] || { echo "$FILE: no function bodies found (not a module?)" >&2; exit 1; }
read -r idx largest <<<"$(head -1 <<<"$bodies")"
top="$(head -5 <<<"$bodies" | awk '{printf "%s%s", (NR > 1 ? ", " : ""), $2}')"
if [ "$largest" -gt "$LIMIT" ]; then
  echo "$FILE: function $idx has a $largest-byte body, over the $LIMIT-byte limit (largest: $top)." >&2
  echo "Large functions cost Envoy memory at load (see scripts/check-wasm.sh, docs/memory.md):" >&2
  echo "keep cold code out of line, or show with bench/memory.sh that this one costs nothing." >&2
  exit 1
fi
log "$FILE: largest function bodies $top bytes (limit $LIMIT)"
