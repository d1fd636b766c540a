"""The "test service" the official W3C Trace Context test suite (w3c/trace-context `test/`)
drives, standing for an app that knows nothing of tracing behind Envoy + trace-inject.

The harness POSTs a JSON list of {"url": ..., "arguments": ...} to the service URL (Envoy's
listener). Envoy and the filter forward the request here; for each item this app POSTs
`arguments` (as JSON) to `url`, carrying the `traceparent` and `tracestate` header lines exactly
as it received them. So the harness sees what the filter forwarded. Standard library only.

  python3 tests/w3c/service.py PORT [VIA_PORT]

With VIA_PORT the callbacks go to 127.0.0.1:VIA_PORT (same path) instead of the url's host and
port: an egress Envoy + filter there forwards them to the harness, as a sidecar intercepts an
app's outbound calls.
"""

import http.client
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TRACE_HEADERS = ("traceparent", "tracestate")


VIA_PORT = None


def call_back(url, body, trace_headers):
    u = urllib.parse.urlsplit(url)
    host, port = ("127.0.0.1", VIA_PORT) if VIA_PORT else (u.hostname, u.port or 80)
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.putrequest("POST", u.path or "/")
        # Each line as received, in order: several tracestate lines stay several lines.
        for name, value in trace_headers:
            conn.putheader(name, value)
        data = json.dumps(body).encode()
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            actions = json.loads(raw or b"[]")
        except ValueError:
            actions = []
        trace_headers = [
            (k, v) for k, v in self.headers.items() if k.lower() in TRACE_HEADERS
        ]
        results = []
        for action in actions if isinstance(actions, list) else []:
            try:
                status = call_back(action["url"], action.get("arguments") or [], trace_headers)
                results.append({"url": action["url"], "status": status})
            except Exception as err:  # the harness reports a missing callback itself
                results.append({"url": action.get("url"), "error": str(err)})
        body = json.dumps({"received": trace_headers, "results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("service: " + (fmt % args) + "\n")


def main():
    global VIA_PORT
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    VIA_PORT = int(sys.argv[2]) if len(sys.argv) > 2 else None
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"test service on http://127.0.0.1:{port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
