#!/usr/bin/env bash
# Measures what Envoy's Zipkin tracer (examples/envoy-sidecar.yaml WITHOUT trace-inject, sampling
# 100 %) does with lenient B3 input: for each case, the x-b3-*/b3 the upstream received. Joined =
# the trace id sent (lower-cased) goes on with a new span id; "as sent" = the tracer made no span.
# Findings are in docs/b3-leniency.md.   Usage: tests/oracle/measure-envoy-b3.sh
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$ROOT"
ENVOY="${ENVOY_BIN:-$TOOLS/venv/bin/envoy}"
WORK="$(mktemp -d /tmp/trace-inject-b3m.XXXXXX)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
L=$(port); UP=$(port)
pids=(); trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
python3 -c '
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        b = json.dumps([[k.lower(), v] for k, v in self.headers.items()
                        if k.lower().startswith("x-b3") or k.lower() in ("b3", "traceparent")]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$UP" & pids+=($!)
python3 - "$L" "$UP" >"$WORK/envoy.yaml" <<'PY'
import re, sys
listener, up = sys.argv[1:]
t = open("examples/envoy-sidecar.yaml").read()
t = re.sub(r"\n          - name: trace-inject\n.*?code: \{local: \{filename: dist/trace_inject.wasm\}\}", "", t, flags=re.S)
t = t.replace("port_value: 10001}", f"port_value: {listener}}}").replace("port_value: 8080}", f"port_value: {up}}}")
t = t.replace("port_value: 9902}", "port_value: 0}")
assert "trace-inject" not in t.split("http_filters:")[1].split("clusters:")[0]
print(t, end="")
PY
"$ENVOY" -c "$WORK/envoy.yaml" --base-id $((30000 + RANDOM % 10000)) --concurrency 1 -l warning >"$WORK/envoy.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$L/" && break; sleep 0.1; done
"$ENVOY" --version | head -1
T=463ac35c9f6413ad48485a3953bb6124; S=a2fb4a1d1a96d312
while IFS='|' read -r label headers; do
  args=(); IFS=';' read -ra hs <<<"$headers"; for h in "${hs[@]}"; do args+=(-H "$h"); done
  printf '%-34s %s\n' "$label" "$(curl -s "${args[@]}" "127.0.0.1:$L/")"
done <<CASES
upper-case ids|x-b3-traceid: ${T^^};x-b3-spanid: ${S^^};x-b3-sampled: 1
lower-case ids, sampled 0|x-b3-traceid: $T;x-b3-spanid: $S;x-b3-sampled: 0
sampled true|x-b3-traceid: $T;x-b3-spanid: $S;x-b3-sampled: true
sampled false|x-b3-traceid: $T;x-b3-spanid: $S;x-b3-sampled: false
sampled True|x-b3-traceid: $T;x-b3-spanid: $S;x-b3-sampled: True
sampled 2|x-b3-traceid: $T;x-b3-spanid: $S;x-b3-sampled: 2
flags 1 sampled 0|x-b3-traceid: $T;x-b3-spanid: $S;x-b3-sampled: 0;x-b3-flags: 1
flags 2 sampled 0|x-b3-traceid: $T;x-b3-spanid: $S;x-b3-sampled: 0;x-b3-flags: 2
flags 1 alone|x-b3-traceid: $T;x-b3-spanid: $S;x-b3-flags: 1
trace id 15 hex|x-b3-traceid: ${T:0:15};x-b3-spanid: $S;x-b3-sampled: 1
trace id 17 hex|x-b3-traceid: ${T:0:17};x-b3-spanid: $S;x-b3-sampled: 1
trace id 0x+16|x-b3-traceid: 0x${T:0:16};x-b3-spanid: $S;x-b3-sampled: 1
trace id all zero|x-b3-traceid: 00000000000000000000000000000000;x-b3-spanid: $S;x-b3-sampled: 1
span id all zero|x-b3-traceid: $T;x-b3-spanid: 0000000000000000;x-b3-sampled: 1
b3 upper case|b3: ${T^^}-${S^^}-1
b3 flag true|b3: $T-$S-true
b3 flag d|b3: $T-$S-d
CASES
