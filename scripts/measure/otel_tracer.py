#!/usr/bin/env python3
"""Measures Envoy's OpenTelemetry tracer: for each incoming header set, what the upstream gets,
what %TRACE_ID% returns and which trace the OTLP collector receives.

usage: otel_tracer.py ENVOY_BIN ECHO_BIN [WASM] > results.json
Needs the PyPI package opentelemetry-proto (decodes what Envoy posts: OTLP/HTTP protobuf).
"""
import http.server, json, os, random, socket, subprocess, sys, tempfile, threading, time
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

TID = "4bf92f3577b34da6a3ce929d0e0e4736"
SID = "00f067aa0ba902b7"
B3T = "463ac35c9f6413ad48485a3953bb6124"
B3S = "a2fb4a1d1a96d312"

def tp(v="00", t=TID, s=SID, f="01", extra=""):
    return f"{v}-{t}-{s}-{f}{extra}"

# (name, [(header, value), ...], path)
CASES = [
    ("no headers", [], "/"),
    ("traceparent 01", [("traceparent", tp())], "/"),
    ("traceparent 00 (not sampled)", [("traceparent", tp(f="00"))], "/"),
    ("traceparent + tracestate", [("traceparent", tp()), ("tracestate", "a=1,b=2")], "/"),
    ("traceparent + two tracestate", [("traceparent", tp()), ("tracestate", "a=1"), ("tracestate", "b=2")], "/"),
    ("traceparent upper case", [("traceparent", tp().upper())], "/"),
    ("version 01 + extra field", [("traceparent", tp(v="01", extra="-what"))], "/"),
    ("version ff", [("traceparent", tp(v="ff"))], "/"),
    ("version 00, 56 chars", [("traceparent", tp(extra="x"))], "/"),
    ("version 00 + '-extra'", [("traceparent", tp(extra="-ab"))], "/"),
    ("all-zero trace id", [("traceparent", tp(t="0" * 32))], "/"),
    ("all-zero span id", [("traceparent", tp(s="0" * 16))], "/"),
    ("garbage", [("traceparent", "garbage")], "/"),
    ("B3 multi only", [("x-b3-traceid", B3T), ("x-b3-spanid", B3S), ("x-b3-sampled", "1")], "/"),
    ("b3 single only", [("b3", f"{B3T}-{B3S}-1")], "/"),
    ("traceparent + B3 of another trace", [("traceparent", tp()), ("x-b3-traceid", B3T), ("x-b3-spanid", B3S), ("x-b3-sampled", "1")], "/"),
    ("x-request-id char '9'", [("x-request-id", "00000000-0000-9000-8000-000000000001")], "/"),
    ("x-request-id char '4'", [("x-request-id", "00000000-0000-4000-8000-000000000002")], "/"),
    ("x-request-id char 'a'", [("x-request-id", "00000000-0000-a000-8000-000000000003")], "/"),
    ("x-request-id char 'b'", [("x-request-id", "00000000-0000-b000-8000-000000000004")], "/"),
    ("traceparent 00 + x-request-id '9'", [("traceparent", tp(f="00")), ("x-request-id", "00000000-0000-9000-8000-000000000005")], "/"),
    ("x-envoy-force-trace", [("x-envoy-force-trace", "true")], "/"),
    ("local reply: direct_response", [], "/direct"),
    ("local reply: direct_response + traceparent", [("traceparent", tp())], "/direct"),
    ("local reply: 404 no route", [], "/noroute"),
    ("local reply: 404 + traceparent", [("traceparent", tp())], "/noroute"),
]

SPANS = []  # (trace_id, span_id, parent_span_id, name, kind, attrs)
SPANS_LOCK = threading.Lock()

class Collector(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
        req = trace_service_pb2.ExportTraceServiceRequest()
        req.ParseFromString(body)
        with SPANS_LOCK:
            for rs in req.resource_spans:
                res = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        attrs = {a.key: a.value.string_value or str(a.value) for a in s.attributes}
                        SPANS.append(dict(trace=s.trace_id.hex(), span=s.span_id.hex(), parent=s.parent_span_id.hex(),
                                          name=s.name, kind=s.kind, tracestate=s.trace_state, attrs=attrs, resource=res,
                                          content_type=self.headers.get("content-type")))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def config(envoy_port, admin_port, echo_port, coll_port, sampling, spawn, filter_cfg, wasm, grpc=False):
    filt = ""
    if filter_cfg is not None:
        filt = f"""
          - name: trace-inject
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: trace-inject
                root_id: trace-inject
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{filter_cfg}'
                failure_policy: FAIL_OPEN
                vm_config:
                  vm_id: trace-inject
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: {wasm}}}}}"""
    tracing = ""
    if sampling is not None:
        tracing = f"""
          tracing:
            random_sampling: {{value: {sampling}}}
            spawn_upstream_span: {str(spawn).lower()}
            custom_tags: [{{tag: case, request_header: {{name: x-case}}}}]
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: backend.default
                http_service:
                  http_uri: {{uri: "http://127.0.0.1:{coll_port}/v1/traces", cluster: otel, timeout: 1s}}"""
    return f"""
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}}}
node: {{id: sidecar~10.0.0.1~backend-v1-abc.default~default.svc.cluster.local, cluster: backend.default}}
static_resources:
  listeners:
  - name: inbound
    address: {{socket_address: {{address: 127.0.0.1, port_value: {envoy_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound{tracing}
          route_config:
            response_headers_to_add:
            - header: {{key: x-envoy-trace-id, value: "%TRACE_ID%"}}
              append_action: OVERWRITE_IF_EXISTS_OR_ADD
            - header: {{key: x-envoy-request-id, value: "%REQ(X-REQUEST-ID)%"}}
              append_action: OVERWRITE_IF_EXISTS_OR_ADD
            virtual_hosts:
            - name: local
              domains: ["*"]
              routes:
              - match: {{path: "/"}}
                route: {{cluster: echo}}
              - match: {{path: "/direct"}}
                direct_response: {{status: 200, body: {{inline_string: "direct"}}}}
          http_filters:{filt}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: echo
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: echo
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {echo_port}}}}}}}}}]}}]
  - name: otel
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: otel
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {coll_port}}}}}}}}}]}}]
"""

def send(port, path, headers, tag):
    req = f"GET {path} HTTP/1.1\r\nhost: localhost\r\nx-case: {tag}\r\n"
    for k, v in headers:
        req += f"{k}: {v}\r\n"
    req += "connection: close\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req.encode())
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    rh = [(l.split(":", 1)[0].lower(), l.split(":", 1)[1].strip()) for l in lines[1:]]
    return status, rh, body

def run_config(envoy, echo_bin, wasm, sampling, spawn, filter_cfg, warmup=2):
    echo_port, coll_port, envoy_port, admin_port = free_port(), free_port(), free_port(), free_port()
    echo = subprocess.Popen([echo_bin, "echo", "--port", str(echo_port), "-q"], stderr=subprocess.DEVNULL)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", coll_port), Collector)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with SPANS_LOCK:
        SPANS.clear()
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(config(envoy_port, admin_port, echo_port, coll_port, sampling, spawn, filter_cfg, wasm))
    cfg.close()
    env = subprocess.Popen([envoy, "-c", cfg.name, "--concurrency", "1", "--base-id", str(random.randint(1000, 60000)),
                            "-l", "warning"], stderr=open(cfg.name + ".log", "w"), cwd=os.getcwd())
    try:
        deadline = time.time() + 20
        while True:
            try:
                send(envoy_port, "/", [], "ready")
                break
            except OSError:
                if time.time() > deadline or env.poll() is not None:
                    raise RuntimeError("envoy did not start: " + open(cfg.name + ".log").read()[-2000:])
                time.sleep(0.1)
        for i in range(warmup):  # the filter's auto mode settles after the first request
            send(envoy_port, "/", [], f"warmup{i}")
        rows = []
        for i, (name, headers, path) in enumerate(CASES):
            status, rh, body = send(envoy_port, path + ("" if path != "/" else "") , headers, f"c{i}")
            up = None
            if path == "/" and status == 200:
                up = json.loads(body)["headers"]
            def hv(lst, n):
                return [v for k, v in lst if k.lower() == n]
            rows.append(dict(case=name, path=path, sent=headers, status=status,
                             envoy_trace_id=hv(rh, "x-envoy-trace-id"), filter_trace_id=hv(rh, "x-trace-id"),
                             request_id_seen_by_envoy=hv(rh, "x-envoy-request-id"),
                             upstream=None if up is None else {k: hv(up, k) for k in
                                 ["traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "b3", "x-request-id"]}))
        # Wait for the spans (positive signal: one span per case we expect, or 12 s).
        expected = len(rows) if sampling else 0
        deadline = time.time() + 12
        while time.time() < deadline:
            with SPANS_LOCK:
                seen = {s["attrs"].get("case") for s in SPANS}
            if expected and all(f"c{i}" in seen for i in range(len(rows))):
                time.sleep(0.5)
                break
            time.sleep(0.5)
        with SPANS_LOCK:
            spans = list(SPANS)
        return rows, spans
    finally:
        env.terminate(); env.wait()
        echo.terminate(); echo.wait()
        srv.shutdown(); srv.server_close()

if __name__ == "__main__":
    envoy, echo_bin = sys.argv[1], sys.argv[2]
    wasm = sys.argv[3] if len(sys.argv) > 3 else None
    which = sys.argv[4].split(",") if len(sys.argv) > 4 else None
    configs = [
        ("no tracer, no filter", None, False, None),
        ("otel 100", 100, False, None),
        ("otel 0", 0, False, None),
        ("otel 100 spawn_upstream_span", 100, True, None),
        ("otel 100 + filter {\"tracer\":\"none\"}", 100, False, '{"tracer":"none"}'),
        ("otel 100 + filter {}", 100, False, '{}'),
        ("otel 0 + filter {}", 0, False, '{}'),
        ("otel 100 spawn + filter {}", 100, True, '{}'),
    ]
    out = []
    for name, sampling, spawn, fc in configs:
        if which and name not in which:
            continue
        if fc is not None and not wasm:
            continue
        rows, spans = run_config(envoy, echo_bin, wasm, sampling, spawn, fc)
        out.append(dict(config=name, rows=rows, spans=spans))
        print(f"done {name}: {len(rows)} rows, {len(spans)} spans", file=sys.stderr)
    json.dump(out, sys.stdout, indent=1)
