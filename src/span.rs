//! The filter's own spans (when `export` is on): what one finished span holds, the per-worker
//! buffer they wait in (bounded in spans and in bytes), and the two bodies they are posted as:
//! Zipkin v2 JSON and OTLP/HTTP JSON. Both encoders read the same `FinishedSpan`.

use std::collections::VecDeque;

use crate::context::{Sampling, TraceContext};
use crate::ids::{SpanId, TraceId};
use crate::log_record::loggable_path;
use crate::text::{client_text, push_json_str, truncate_utf8};
use crate::workload::{NodeInfo, Workload, UNKNOWN};

/// Longest request path kept, in bytes (query string already removed): Envoy's default
/// `max_path_tag_length` for its own tracers' `http.url`.
pub const MAX_PATH_BYTES: usize = 256;
/// Longest `:authority` kept: a DNS name (253) with most ports.
pub const MAX_AUTHORITY_BYTES: usize = 256;
/// Longest method kept: every IANA-registered method fits (the longest, `UPDATEREDIRECTREF`, is 17).
pub const MAX_METHOD_BYTES: usize = 20;
/// Longest upstream cluster name kept (operator-chosen, bounded all the same).
pub const MAX_CLUSTER_BYTES: usize = 256;

/// The request line the filter's span keeps, each client-controlled string bounded here, once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestLine {
    pub method: Option<String>,
    /// Without query string or fragment.
    pub path: Option<String>,
    pub authority: Option<String>,
}

impl RequestLine {
    /// From the request's `:method`, `:path` and `:authority`, as the client sent them.
    pub fn new(method: Option<&[u8]>, path: Option<&[u8]>, authority: Option<&[u8]>) -> Self {
        RequestLine {
            method: method.map(|m| client_text(m, MAX_METHOD_BYTES)),
            path: path.map(|p| client_text(loggable_path(p, false), MAX_PATH_BYTES)),
            authority: authority.map(|a| client_text(a, MAX_AUTHORITY_BYTES)),
        }
    }

    fn heap_bytes(&self) -> usize {
        [&self.method, &self.path, &self.authority]
            .into_iter()
            .map(|s| s.as_ref().map_or(0, String::capacity))
            .sum()
    }
}

/// What the adapter knows about the request when it finishes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpFields<'a> {
    pub line: RequestLine,
    /// Envoy's `response.code`.
    pub status: Option<u64>,
    /// Envoy's `response.grpc_status`, for a gRPC call.
    pub grpc_status: Option<u32>,
    /// Envoy's `xds.cluster_name`.
    pub upstream_cluster: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    pub trace_id: TraceId,
    pub id: SpanId,
    pub parent_id: Option<SpanId>,
    /// Nanoseconds since the epoch.
    pub start_ns: u64,
    pub end_ns: u64,
    pub debug: bool,
    /// Client-controlled strings, each cut to its `MAX_*_BYTES`.
    pub line: RequestLine,
    pub status: Option<u16>,
    pub grpc_status: Option<u32>,
    pub upstream_cluster: Option<String>,
    /// The trace an untrusted caller sent, which this span's trace replaced (`trust_incoming`).
    pub caller_trace_id: Option<TraceId>,
}

impl FinishedSpan {
    /// The filter's SERVER span for a request: `context` is the one the request left with (its
    /// span id is this span's, its parent the caller's). Every string is bounded here.
    pub fn new(context: &TraceContext, start_ns: u64, end_ns: u64, http: HttpFields) -> Self {
        FinishedSpan {
            trace_id: context.trace_id,
            id: context.span_id,
            parent_id: context.parent_span_id,
            start_ns,
            end_ns: end_ns.max(start_ns),
            debug: context.sampling == Sampling::Debug,
            line: http.line,
            status: http.status.and_then(|s| u16::try_from(s).ok()),
            grpc_status: http.grpc_status,
            upstream_cluster: http
                .upstream_cluster
                .map(|c| truncate_utf8(c, MAX_CLUSTER_BYTES).to_string()),
            caller_trace_id: None,
        }
    }

    /// Bytes this span holds in memory (its slot in the buffer and its strings' heap buffers):
    /// what `SpanBuffer` counts against `buffer_bytes`. The deque's spare capacity (at most as
    /// many slots again) is not counted.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<(FinishedSpan, usize)>()
            + self.line.heap_bytes()
            + self.upstream_cluster.as_ref().map_or(0, String::capacity)
    }

    fn is_error(&self) -> bool {
        self.status.is_some_and(|s| s >= 500)
    }

    /// The call's service and method, for a gRPC call with a well-formed path.
    fn rpc(&self) -> Option<(&str, &str)> {
        self.grpc_status?;
        crate::grpc::service_and_method(self.line.path.as_deref()?)
    }
}

/// Spans waiting for the next flush, bounded by count and by bytes: past either bound the oldest
/// are dropped (and counted), whatever the collector does.
#[derive(Debug)]
pub struct SpanBuffer {
    spans: VecDeque<(FinishedSpan, usize)>,
    limit: usize,
    max_bytes: usize,
    bytes: usize,
    /// Bytes of `max_bytes` held elsewhere (export bodies waiting for the collector).
    reserved: usize,
}

impl SpanBuffer {
    /// At most `limit` spans and `max_bytes` bytes (`FinishedSpan::memory_bytes`).
    pub fn new(limit: usize, max_bytes: usize) -> SpanBuffer {
        SpanBuffer {
            spans: VecDeque::new(),
            limit: limit.max(1),
            max_bytes,
            bytes: 0,
            reserved: 0,
        }
    }

    /// Leaves `bytes` of the bound to others; spans already held beyond what is left are
    /// dropped at the next push.
    pub fn reserve(&mut self, bytes: usize) {
        self.reserved = bytes.min(self.max_bytes);
    }

    fn room(&self) -> usize {
        self.max_bytes - self.reserved
    }

    /// Adds a span; returns how many spans were dropped to keep both bounds: old ones, or this
    /// one if it alone exceeds `max_bytes`.
    pub fn push(&mut self, span: FinishedSpan) -> u64 {
        let size = span.memory_bytes();
        if size > self.room() {
            return 1;
        }
        let mut dropped = 0;
        while self.spans.len() >= self.limit || self.bytes + size > self.room() {
            let Some((_, old)) = self.spans.pop_front() else {
                break;
            };
            self.bytes -= old;
            dropped += 1;
        }
        self.spans.push_back((span, size));
        self.bytes += size;
        dropped
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes held, as counted against `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes up to `n` of the oldest spans.
    pub fn take(&mut self, n: usize) -> Vec<FinishedSpan> {
        let n = n.min(self.spans.len());
        let mut taken = 0;
        let batch: Vec<FinishedSpan> = self
            .spans
            .drain(..n)
            .map(|(s, b)| {
                taken += b;
                s
            })
            .collect();
        self.bytes -= taken;
        batch
    }
}

/// A Zipkin v2 JSON array (`POST /api/v2/spans`), every span a SERVER span of `service`, with
/// `common` tags (the workload) added to each. Tags: `http.method`, `http.path`,
/// `http.status_code`, `error` (5xx), `upstream_cluster`; name: the request's authority.
pub fn zipkin_json(spans: &[FinishedSpan], service: &str, common: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(512 * spans.len() + 2);
    out.push('[');
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"traceId\":\"");
        s.trace_id.push_b3(&mut out);
        out.push_str("\",\"id\":\"");
        s.id.push_hex(&mut out);
        out.push('"');
        if let Some(p) = s.parent_id {
            out.push_str(",\"parentId\":\"");
            p.push_hex(&mut out);
            out.push('"');
        }
        out.push_str(",\"kind\":\"SERVER\",\"name\":");
        push_json_str(&mut out, s.line.authority.as_deref().unwrap_or("-"));
        out.push_str(",\"timestamp\":");
        out.push_str(&(s.start_ns / 1000).to_string());
        out.push_str(",\"duration\":");
        out.push_str(
            &(s.end_ns.saturating_sub(s.start_ns) / 1000)
                .max(1)
                .to_string(),
        );
        if s.debug {
            out.push_str(",\"debug\":true");
        }
        out.push_str(",\"localEndpoint\":{\"serviceName\":");
        push_json_str(&mut out, service);
        out.push_str("},\"tags\":{");
        let status = s.status.map(|c| c.to_string());
        let grpc_status = s.grpc_status.map(|c| c.to_string());
        let caller = s.caller_trace_id.map(TraceId::to_hex32);
        // As Envoy's own tracer tags a response: `error` on a 5xx, and on a gRPC status not OK.
        let error = match (&status, s.grpc_status) {
            (_, Some(g)) if g != 0 => Some("true"),
            (Some(code), _) if s.is_error() => Some(code.as_str()),
            _ => None,
        };
        let own = [
            ("http.method", s.line.method.as_deref()),
            ("http.path", s.line.path.as_deref()),
            ("http.status_code", status.as_deref()),
            ("grpc.status_code", grpc_status.as_deref()),
            ("error", error),
            ("upstream_cluster", s.upstream_cluster.as_deref()),
            ("caller_trace_id", caller.as_deref()),
        ];
        let tags = own.into_iter().filter_map(|(k, v)| Some((k, v?)));
        for (j, (k, v)) in tags.chain(common.iter().copied()).enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_json_str(&mut out, k);
            out.push(':');
            push_json_str(&mut out, v);
        }
        out.push_str("}}");
    }
    out.push(']');
    out
}

/// The OTLP `Resource` of every span a worker exports, encoded once at configure: the workload
/// by the OpenTelemetry semantic conventions, each attribute only where it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpResource {
    attributes: Vec<(&'static str, String)>,
    /// `{"attributes":[...]}`, copied into every body.
    json: String,
}

impl OtlpResource {
    /// `service.name` (the exported service name), `service.namespace` and `k8s.namespace.name`
    /// (the namespace), `service.version`, and `k8s.pod.name` when the pod name came from Istio's
    /// node metadata (`NAME`) or the configuration, not from the `node.id` fallback.
    pub fn new(service_name: &str, workload: &Workload, node: &NodeInfo) -> OtlpResource {
        let known = |v: &str| (v != UNKNOWN).then(|| v.to_string());
        let pod_is_k8s = node.node_id.as_deref() != Some(workload.pod.as_str());
        let candidates = [
            ("service.name", Some(service_name.to_string())),
            ("service.namespace", known(&workload.namespace)),
            ("service.version", known(&workload.version)),
            ("k8s.namespace.name", known(&workload.namespace)),
            ("k8s.pod.name", known(&workload.pod).filter(|_| pod_is_k8s)),
        ];
        let attributes: Vec<(&'static str, String)> = candidates
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        let mut json = String::from("{\"attributes\":[");
        for (i, (k, v)) in attributes.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            push_attr_str(&mut json, k, v);
        }
        json.push_str("]}");
        OtlpResource { attributes, json }
    }

    pub fn attributes(&self) -> &[(&'static str, String)] {
        &self.attributes
    }
}

/// The instrumentation scope of the exported spans.
pub const OTLP_SCOPE: &str = "trace-inject";

/// HTTP methods the semantic conventions know; others are reported as `_OTHER`.
const KNOWN_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// An OTLP/HTTP JSON `ExportTraceServiceRequest` (`POST /v1/traces`, `application/json`), per
/// the OTLP specification's JSON encoding: ids as hex strings (32 and 16 digits), enums as
/// integers, 64-bit integers as decimal strings, lowerCamelCase keys. Each span is a SERVER span
/// (`kind` 2) named by its method, with the HTTP semantic-convention attributes
/// `http.request.method` (+ `http.request.method_original` for `_OTHER`), `url.path`,
/// `server.address`, `server.port`, `http.response.status_code`, plus `upstream_cluster`
/// (as Envoy's tracers name it); status ERROR (2) on 5xx, unset otherwise.
pub fn otlp_json(spans: &[FinishedSpan], resource: &OtlpResource) -> String {
    let mut out = String::with_capacity(600 * spans.len() + resource.json.len() + 128);
    out.push_str("{\"resourceSpans\":[{\"resource\":");
    out.push_str(&resource.json);
    out.push_str(",\"scopeSpans\":[{\"scope\":{\"name\":\"");
    out.push_str(OTLP_SCOPE);
    out.push_str("\",\"version\":\"");
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str("\"},\"spans\":[");
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_otlp_span(&mut out, s);
    }
    out.push_str("]}]}]}");
    out
}

fn push_otlp_span(out: &mut String, s: &FinishedSpan) {
    out.push_str("{\"traceId\":\"");
    s.trace_id.push_hex32(out);
    out.push_str("\",\"spanId\":\"");
    s.id.push_hex(out);
    out.push('"');
    if let Some(p) = s.parent_id {
        out.push_str(",\"parentSpanId\":\"");
        p.push_hex(out);
        out.push('"');
    }
    let method = s.line.method.as_deref();
    let known = method.filter(|m| KNOWN_METHODS.contains(m));
    let rpc = s.rpc();
    out.push_str(",\"name\":");
    match rpc {
        // RPC conventions: `$rpc.service/$rpc.method`.
        Some((service, method)) => push_json_str(out, &format!("{service}/{method}")),
        None => push_json_str(out, known.unwrap_or("HTTP")),
    }
    out.push_str(",\"kind\":2,\"startTimeUnixNano\":\"");
    out.push_str(&s.start_ns.to_string());
    out.push_str("\",\"endTimeUnixNano\":\"");
    out.push_str(&s.end_ns.max(s.start_ns).to_string());
    out.push_str("\",\"attributes\":[");
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push(',');
        }
        first = false;
    };
    if let Some(m) = method {
        sep(out);
        push_attr_str(out, "http.request.method", known.unwrap_or("_OTHER"));
        if known.is_none() {
            sep(out);
            push_attr_str(out, "http.request.method_original", m);
        }
    }
    if let Some(p) = &s.line.path {
        sep(out);
        push_attr_str(out, "url.path", p);
    }
    if let Some((host, port)) = s
        .line
        .authority
        .as_deref()
        .and_then(crate::authority::split_host_port)
    {
        sep(out);
        push_attr_str(out, "server.address", host);
        if let Some(port) = port.and_then(|p| p.parse::<u16>().ok()) {
            sep(out);
            push_attr_int(out, "server.port", port.into());
        }
    }
    if let Some(code) = s.status {
        sep(out);
        push_attr_int(out, "http.response.status_code", code.into());
    }
    if let Some(c) = &s.upstream_cluster {
        sep(out);
        push_attr_str(out, "upstream_cluster", c);
    }
    if let Some(t) = s.caller_trace_id {
        sep(out);
        push_attr_str(out, "trace_inject.caller_trace_id", &t.to_hex32());
    }
    if let Some(code) = s.grpc_status {
        sep(out);
        push_attr_str(out, "rpc.system", "grpc");
        if let Some((service, method)) = rpc {
            sep(out);
            push_attr_str(out, "rpc.service", service);
            sep(out);
            push_attr_str(out, "rpc.method", method);
        }
        sep(out);
        push_attr_int(out, "rpc.grpc.status_code", code.into());
    }
    out.push(']');
    // A gRPC server span fails on the conventions' server errors (a 200 carries them all); an
    // HTTP one on a 5xx.
    match s.grpc_status {
        Some(code) if crate::grpc::is_server_error(code) => {
            out.push_str(",\"status\":{\"code\":2,\"message\":");
            push_json_str(out, crate::grpc::code_name(code));
            out.push('}');
        }
        Some(_) => {}
        None if s.is_error() => out.push_str(",\"status\":{\"code\":2}"),
        None => {}
    }
    out.push('}');
}

fn push_attr_str(out: &mut String, key: &str, value: &str) {
    out.push_str("{\"key\":");
    push_json_str(out, key);
    out.push_str(",\"value\":{\"stringValue\":");
    push_json_str(out, value);
    out.push_str("}}");
}

/// `intValue` is an int64: a decimal string in OTLP JSON.
fn push_attr_int(out: &mut String, key: &str, value: u64) {
    out.push_str("{\"key\":");
    push_json_str(out, key);
    out.push_str(",\"value\":{\"intValue\":\"");
    out.push_str(&value.to_string());
    out.push_str("\"}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const T32: &str = "463ac35c9f6413ad48485a3953bb6124";

    fn ctx(n: u64) -> TraceContext {
        TraceContext {
            trace_id: TraceId::parse(T32.as_bytes()).unwrap(),
            span_id: SpanId(n),
            parent_span_id: (n > 1).then_some(SpanId(1)),
            sampling: if n == 3 {
                Sampling::Debug
            } else {
                Sampling::Accept
            },
            random: false,
        }
    }

    fn line(method: Option<&str>, path: Option<&str>, authority: Option<&str>) -> RequestLine {
        RequestLine::new(
            method.map(str::as_bytes),
            path.map(str::as_bytes),
            authority.map(str::as_bytes),
        )
    }

    fn span_with(n: u64, http: HttpFields) -> FinishedSpan {
        FinishedSpan::new(
            &ctx(n),
            1_700_000_000_000_000_000,
            1_700_000_000_001_234_567,
            http,
        )
    }

    fn span(n: u64) -> FinishedSpan {
        span_with(
            n,
            HttpFields {
                line: line(
                    Some("GET"),
                    Some("/a\"b?token=secret"),
                    Some("localhost:10000"),
                ),
                status: Some(if n == 2 { 503 } else { 200 }),
                grpc_status: None,
                upstream_cluster: Some("echo"),
            },
        )
    }

    #[test]
    fn zipkin_v2_json() {
        let json = zipkin_json(
            &[span(1), span(2), span(3)],
            "checkout",
            &[("namespace", "shop")],
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(v[0]["traceId"], T32);
        assert_eq!(v[0]["id"], "0000000000000001");
        assert!(v[0].get("parentId").is_none(), "a root has no parentId");
        assert_eq!(v[1]["parentId"], "0000000000000001");
        assert_eq!(v[1]["kind"], "SERVER");
        assert_eq!(v[1]["name"], "localhost:10000");
        assert_eq!(v[1]["timestamp"], 1_700_000_000_000_000u64);
        assert_eq!(v[1]["duration"], 1234);
        assert_eq!(v[1]["localEndpoint"]["serviceName"], "checkout");
        assert_eq!(v[1]["tags"]["http.method"], "GET");
        assert_eq!(v[1]["tags"]["http.path"], "/a\"b", "no query string");
        assert_eq!(v[1]["tags"]["http.status_code"], "503");
        assert_eq!(v[1]["tags"]["error"], "503");
        assert!(v[0]["tags"].get("error").is_none());
        assert_eq!(v[1]["tags"]["upstream_cluster"], "echo");
        assert_eq!(v[1]["tags"]["namespace"], "shop");
        assert_eq!(v[2]["debug"], true);
        assert_eq!(zipkin_json(&[], "x", &[]), "[]");
        let bare = span_with(1, HttpFields::default());
        let v: serde_json::Value = serde_json::from_str(&zipkin_json(&[bare], "x", &[])).unwrap();
        assert_eq!(v[0]["name"], "-");
        assert_eq!(v[0]["tags"], serde_json::json!({}));
    }

    #[test]
    fn client_strings_are_cut_at_documented_lengths_on_char_boundaries() {
        let long_path = format!("/{}?q=1", "p".repeat(16 * 1024));
        let long_host = "h".repeat(1000);
        let s = span_with(
            1,
            HttpFields {
                line: line(Some(&"M".repeat(100)), Some(&long_path), Some(&long_host)),
                status: Some(200),
                grpc_status: None,
                upstream_cluster: Some(&"c".repeat(1000)),
            },
        );
        assert_eq!(s.line.path.as_deref().map(str::len), Some(MAX_PATH_BYTES));
        assert_eq!(
            s.line.authority.as_deref().map(str::len),
            Some(MAX_AUTHORITY_BYTES)
        );
        assert_eq!(
            s.line.method.as_deref().map(str::len),
            Some(MAX_METHOD_BYTES)
        );
        assert_eq!(
            s.upstream_cluster.as_deref().map(str::len),
            Some(MAX_CLUSTER_BYTES)
        );
        // "é" is 2 bytes: a cut inside it goes back to the boundary.
        let accents = format!("/{}", "é".repeat(200));
        let s = span_with(
            1,
            HttpFields {
                line: line(None, Some(&accents), None),
                ..Default::default()
            },
        );
        let p = s.line.path.unwrap();
        assert_eq!(p.len(), MAX_PATH_BYTES - 1, "/ + 127 × é = 255 bytes");
        assert!(p.ends_with('é'));
        assert_eq!(truncate_utf8("aé", 2), "a");
        assert_eq!(truncate_utf8("abc", 3), "abc");
        assert_eq!(truncate_utf8("€", 0), "");
        assert_eq!(
            span_with(
                1,
                HttpFields {
                    line: line(None, None, None),
                    status: Some(70_000),
                    ..Default::default()
                }
            )
            .status,
            None,
            "not an HTTP status"
        );
    }

    #[test]
    fn buffer_is_bounded_by_count_and_drops_the_oldest() {
        let mut b = SpanBuffer::new(2, 1 << 20);
        assert_eq!(b.push(span(1)), 0);
        assert_eq!(b.push(span(2)), 0);
        assert_eq!(b.push(span(3)), 1);
        assert_eq!(b.len(), 2);
        let batch = b.take(10);
        assert_eq!(batch.iter().map(|s| s.id.0).collect::<Vec<_>>(), vec![2, 3]);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
        b.push(span(4));
        b.push(span(5));
        assert_eq!(b.take(1)[0].id.0, 4);
        assert_eq!(b.bytes(), span(5).memory_bytes());
    }

    #[test]
    fn buffer_is_bounded_by_bytes_and_counts_every_drop() {
        let path = format!("/{}", "x".repeat(16 * 1024));
        let big = |n| {
            span_with(
                n,
                HttpFields {
                    line: line(
                        Some("GET"),
                        Some(&path),
                        Some("checkout.shop.svc.cluster.local"),
                    ),
                    status: Some(200),
                    grpc_status: None,
                    upstream_cluster: Some("inbound|8080||"),
                },
            )
        };
        let one = big(1).memory_bytes();
        // Its slot in the buffer plus each string's heap (truncated path: MAX_PATH_BYTES).
        let strings: usize = ["GET", "checkout.shop.svc.cluster.local", "inbound|8080||"]
            .iter()
            .map(|s| s.len())
            .sum();
        assert_eq!(
            one,
            std::mem::size_of::<(FinishedSpan, usize)>() + MAX_PATH_BYTES + strings,
            "every string's heap counts"
        );
        assert!(
            one < std::mem::size_of::<FinishedSpan>() + 2 * MAX_PATH_BYTES,
            "a 16 KiB path costs at most MAX_PATH_BYTES: {one}"
        );
        let max_bytes = 10 * one + one / 2;
        let mut b = SpanBuffer::new(1_000_000, max_bytes);
        let mut dropped = 0;
        for n in 1..=200 {
            dropped += b.push(big(n));
            assert!(b.bytes() <= max_bytes, "{} > {max_bytes}", b.bytes());
        }
        assert_eq!(b.len(), 10, "the byte bound, not the count, decides");
        assert_eq!(dropped, 200 - 10, "every span is kept or counted");
        assert_eq!(b.take(1)[0].id.0, 191, "the newest are kept");
        // Both bounds are inclusive: exactly `max_bytes` fits.
        let size = span(1).memory_bytes();
        let mut exact = SpanBuffer::new(100, 3 * size);
        for n in 1..=3 {
            assert_eq!(exact.push(span(n)), 0, "span {n} of 3 fits exactly");
        }
        assert!(!exact.is_empty());
        assert_eq!((exact.len(), exact.bytes()), (3, 3 * size));
        assert_eq!(exact.push(span(4)), 1);
        let mut one_fits = SpanBuffer::new(1, size);
        assert_eq!(one_fits.push(span(1)), 0);
        assert_eq!(one_fits.len(), 1);
        // A span alone over the bound is refused, and counted.
        let mut tiny = SpanBuffer::new(10, 16);
        assert_eq!(tiny.push(span(1)), 1);
        assert!(tiny.is_empty());
    }

    fn workload() -> Workload {
        Workload {
            service: "checkout".into(),
            namespace: "shop".into(),
            version: "v2".into(),
            workload: "checkout-v2".into(),
            cluster: "Kubernetes".into(),
            mesh: "cluster.local".into(),
            pod: "checkout-v2-7d9f8c-abcde".into(),
        }
    }

    #[test]
    fn otlp_resource_from_the_workload() {
        let node = NodeInfo {
            pod_name: Some("checkout-v2-7d9f8c-abcde".into()),
            ..Default::default()
        };
        let r = OtlpResource::new("checkout", &workload(), &node);
        let keys: Vec<_> = r.attributes().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "service.name",
                "service.namespace",
                "service.version",
                "k8s.namespace.name",
                "k8s.pod.name"
            ]
        );
        // Plain Envoy: pod is node.id, version and namespace unknown: left out.
        let plain = Workload {
            namespace: UNKNOWN.into(),
            version: UNKNOWN.into(),
            pod: "n1".into(),
            ..workload()
        };
        let node = NodeInfo {
            node_id: Some("n1".into()),
            ..Default::default()
        };
        let r = OtlpResource::new("edge", &plain, &node);
        assert_eq!(r.attributes(), [("service.name", "edge".to_string())]);
    }

    #[test]
    fn otlp_json_shape() {
        let r = OtlpResource::new("checkout", &workload(), &NodeInfo::default());
        let mut other = span(2);
        other.line.method = Some("PURGE".into());
        other.line.authority = Some("[::1]:8443".into());
        let json = otlp_json(&[span(1), other], &r);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let rs = &v["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0]["key"], "service.name");
        assert_eq!(rs["scopeSpans"][0]["scope"]["name"], OTLP_SCOPE);
        let s = &rs["scopeSpans"][0]["spans"];
        assert_eq!(s[0]["traceId"], T32);
        assert_eq!(s[0]["spanId"], "0000000000000001");
        assert!(s[0].get("parentSpanId").is_none());
        assert_eq!(s[1]["parentSpanId"], "0000000000000001");
        assert_eq!(s[0]["kind"], 2, "enums are integers");
        assert_eq!(s[0]["name"], "GET");
        assert_eq!(
            s[1]["name"], "HTTP",
            "an unknown method does not name the span"
        );
        assert_eq!(
            s[0]["startTimeUnixNano"], "1700000000000000000",
            "int64 as string"
        );
        assert_eq!(s[0]["endTimeUnixNano"], "1700000000001234567");
        let attrs = |i: usize| -> Vec<(String, serde_json::Value)> {
            s[i]["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a["key"].as_str().unwrap().to_string(), a["value"].clone()))
                .collect()
        };
        let a0 = attrs(0);
        let get = |a: &[(String, serde_json::Value)], k: &str| {
            a.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        };
        assert_eq!(
            get(&a0, "http.request.method").unwrap()["stringValue"],
            "GET"
        );
        assert_eq!(get(&a0, "url.path").unwrap()["stringValue"], "/a\"b");
        assert_eq!(
            get(&a0, "server.address").unwrap()["stringValue"],
            "localhost"
        );
        assert_eq!(get(&a0, "server.port").unwrap()["intValue"], "10000");
        assert_eq!(
            get(&a0, "http.response.status_code").unwrap()["intValue"],
            "200"
        );
        assert_eq!(get(&a0, "upstream_cluster").unwrap()["stringValue"], "echo");
        assert!(s[0].get("status").is_none(), "2xx: status unset");
        let a1 = attrs(1);
        assert_eq!(
            get(&a1, "http.request.method").unwrap()["stringValue"],
            "_OTHER"
        );
        assert_eq!(
            get(&a1, "http.request.method_original").unwrap()["stringValue"],
            "PURGE"
        );
        assert_eq!(get(&a1, "server.address").unwrap()["stringValue"], "[::1]");
        assert_eq!(get(&a1, "server.port").unwrap()["intValue"], "8443");
        assert_eq!(s[1]["status"]["code"], 2, "5xx: ERROR");
        let empty: serde_json::Value = serde_json::from_str(&otlp_json(&[], &r)).unwrap();
        assert_eq!(
            empty["resourceSpans"][0]["scopeSpans"][0]["spans"],
            serde_json::json!([])
        );
    }

    /// A gRPC call's span: Envoy's tags in Zipkin (`grpc.status_code`, `error` where not OK);
    /// OpenTelemetry's RPC conventions in OTLP (name, `rpc.*`, ERROR on a server error only).
    #[test]
    fn grpc_calls_carry_their_status_in_both_protocols() {
        let call = |code: u32| {
            span_with(
                1,
                HttpFields {
                    line: line(Some("POST"), Some("/shop.Cart/Add"), Some("cart:8080")),
                    status: Some(200),
                    grpc_status: Some(code),
                    upstream_cluster: None,
                },
            )
        };
        let z: serde_json::Value =
            serde_json::from_str(&zipkin_json(&[call(0), call(5)], "cart", &[])).unwrap();
        assert_eq!(z[0]["tags"]["grpc.status_code"], "0");
        assert!(z[0]["tags"].get("error").is_none());
        assert_eq!(z[1]["tags"]["grpc.status_code"], "5");
        assert_eq!(z[1]["tags"]["error"], "true");
        let resource = OtlpResource::new("cart", &workload(), &NodeInfo::default());
        let o: serde_json::Value =
            serde_json::from_str(&otlp_json(&[call(5), call(13)], &resource)).unwrap();
        let spans = &o["resourceSpans"][0]["scopeSpans"][0]["spans"];
        let attr = |span: &serde_json::Value, key: &str| {
            span["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == key)
                .map(|a| a["value"].clone())
        };
        for span in spans.as_array().unwrap() {
            assert_eq!(span["name"], "shop.Cart/Add");
            assert_eq!(attr(span, "rpc.system").unwrap()["stringValue"], "grpc");
            assert_eq!(
                attr(span, "rpc.service").unwrap()["stringValue"],
                "shop.Cart"
            );
            assert_eq!(attr(span, "rpc.method").unwrap()["stringValue"], "Add");
        }
        assert_eq!(
            attr(&spans[0], "rpc.grpc.status_code").unwrap()["intValue"],
            "5"
        );
        assert!(
            spans[0].get("status").is_none(),
            "NOT_FOUND: not a server error"
        );
        assert_eq!(spans[1]["status"]["code"], 2);
        assert_eq!(spans[1]["status"]["message"], "INTERNAL");
    }
}
