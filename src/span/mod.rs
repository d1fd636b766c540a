//! The filter's own spans (when `export` is on): what one finished span holds, with every
//! client-controlled string bounded once. The per-worker buffer they wait in is `buffer`; the
//! bodies they are posted as, one encoder per protocol, `zipkin` (Zipkin v2 JSON) and `otlp`
//! (OTLP/HTTP JSON). Both encoders read the same `FinishedSpan`.

pub mod buffer;
#[cfg(test)]
mod fixtures;
pub mod otlp;
pub mod zipkin;

pub use buffer::SpanBuffer;
pub use otlp::{otlp_json, OtlpResource, OTLP_SCOPE};
pub use zipkin::zipkin_json;

use crate::context::{Sampling, TraceContext};
use crate::ids::{SpanId, TraceId};
use crate::log_record::loggable_path;
use crate::text::{client_text, truncate_utf8};

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

    pub(crate) fn is_error(&self) -> bool {
        self.status.is_some_and(|s| s >= 500)
    }

    /// The call's service and method, for a gRPC call with a well-formed path.
    pub(crate) fn rpc(&self) -> Option<(&str, &str)> {
        self.grpc_status?;
        crate::grpc::service_and_method(self.line.path.as_deref()?)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::workload::NodeInfo;

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
