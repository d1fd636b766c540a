//! Proves `span::otlp_json` bodies are OTLP/HTTP JSON by the official schema: they deserialise
//! into `opentelemetry-proto`'s `ExportTraceServiceRequest` (hex ids, integer enums, int64 as
//! strings), every key written is one the schema knows (round trip), and the fields hold the
//! span's ids, times, kind, status and semantic-convention attributes.

#[path = "common/otlp.rs"]
mod otlp;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp::{attr, int, string};
use serde_json::Value as Json;
use trace_inject::context::{Sampling, TraceContext};
use trace_inject::fixtures::workload;
use trace_inject::ids::{SpanId, TraceId};
use trace_inject::span::{
    otlp_json, FinishedSpan, HttpFields, OtlpResource, RequestLine, MAX_PATH_BYTES,
};
use trace_inject::workload::NodeInfo;

fn finished(trace: &str, span: u64, parent: Option<u64>, http: HttpFields) -> FinishedSpan {
    let context = TraceContext {
        trace_id: TraceId::parse(trace.as_bytes()).unwrap(),
        span_id: SpanId(span),
        parent_span_id: parent.map(SpanId),
        sampling: Sampling::Accept,
        random: false,
    };
    FinishedSpan::new(
        &context,
        1_764_400_000_123_456_789,
        1_764_400_000_125_000_000,
        http,
    )
}

/// Every key and value of `ours` is in `official` (which also holds the schema's defaults).
fn assert_subset(ours: &Json, official: &Json, at: &str) {
    match (ours, official) {
        (Json::Object(a), Json::Object(b)) => {
            for (k, v) in a {
                let Some(w) = b.get(k) else {
                    panic!("{at}.{k}: not a field of the official schema");
                };
                assert_subset(v, w, &format!("{at}.{k}"));
            }
        }
        (Json::Array(a), Json::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{at}: length");
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                assert_subset(v, w, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(ours, official, "{at}"),
    }
}

#[test]
fn otlp_json_parses_as_the_official_export_trace_service_request() {
    let node = NodeInfo {
        pod_name: Some("checkout-v2-7d9f8c-abcde".into()),
        ..Default::default()
    };
    let resource = OtlpResource::new("checkout", &workload(), &node);
    let long_path = format!("/orders/{}?token=secret", "x".repeat(16 * 1024));
    let spans = [
        finished(
            "463ac35c9f6413ad48485a3953bb6124",
            0xa2fb4a1d1a96d312,
            None,
            HttpFields {
                line: RequestLine::new(
                    Some(b"GET"),
                    Some(b"/orders?id=7"),
                    Some(b"checkout.shop:8080"),
                ),
                status: Some(200),
                grpc_status: None,
                upstream_cluster: Some("inbound|8080||"),
            },
        ),
        // A 64-bit B3 trace id, a parent, a 5xx, an unknown method, a client-sized path.
        finished(
            "a3ce929d0e0e4736",
            0x00f067aa0ba902b7,
            Some(0xa2fb4a1d1a96d312),
            HttpFields {
                line: RequestLine::new(
                    Some(b"PURGE"),
                    Some(long_path.as_bytes()),
                    Some("ünï\"code".as_bytes()),
                ),
                status: Some(503),
                grpc_status: None,
                upstream_cluster: None,
            },
        ),
    ];
    let body = otlp_json(&spans, &resource);
    let request: ExportTraceServiceRequest =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not OTLP JSON: {e}\n{body}"));

    let ours: Json = serde_json::from_str(&body).unwrap();
    let official = serde_json::to_value(&request).unwrap();
    assert_subset(&ours, &official, "");

    assert_eq!(request.resource_spans.len(), 1);
    let rs = &request.resource_spans[0];
    let res = &rs.resource.as_ref().unwrap().attributes;
    assert_eq!(string(attr(res, "service.name")), Some("checkout"));
    assert_eq!(string(attr(res, "service.namespace")), Some("shop"));
    assert_eq!(string(attr(res, "service.version")), Some("v2"));
    assert_eq!(string(attr(res, "k8s.namespace.name")), Some("shop"));
    assert_eq!(
        string(attr(res, "k8s.pod.name")),
        Some("checkout-v2-7d9f8c-abcde")
    );
    let scope = &rs.scope_spans[0];
    assert_eq!(scope.scope.as_ref().unwrap().name, "trace-inject");
    let s = &scope.spans;
    assert_eq!(s.len(), 2);

    assert_eq!(
        s[0].trace_id,
        0x463ac35c9f6413ad48485a3953bb6124u128.to_be_bytes()
    );
    assert_eq!(s[0].span_id, 0xa2fb4a1d1a96d312u64.to_be_bytes());
    assert!(s[0].parent_span_id.is_empty(), "a root span");
    assert_eq!(s[0].kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(s[0].name, "GET");
    assert_eq!(s[0].start_time_unix_nano, 1_764_400_000_123_456_789);
    assert_eq!(s[0].end_time_unix_nano, 1_764_400_000_125_000_000);
    assert!(s[0].status.is_none(), "2xx: unset");
    let a = &s[0].attributes;
    assert_eq!(string(attr(a, "http.request.method")), Some("GET"));
    assert_eq!(string(attr(a, "url.path")), Some("/orders"));
    assert_eq!(string(attr(a, "server.address")), Some("checkout.shop"));
    assert_eq!(int(attr(a, "server.port")), Some(8080));
    assert_eq!(int(attr(a, "http.response.status_code")), Some(200));
    assert_eq!(string(attr(a, "upstream_cluster")), Some("inbound|8080||"));

    assert_eq!(
        s[1].trace_id,
        0xa3ce929d0e0e4736u128.to_be_bytes(),
        "zero-padded"
    );
    assert_eq!(s[1].parent_span_id, 0xa2fb4a1d1a96d312u64.to_be_bytes());
    assert_eq!(s[1].name, "HTTP");
    assert_eq!(
        s[1].status.as_ref().map(|st| st.code),
        Some(2),
        "5xx: ERROR"
    );
    let a = &s[1].attributes;
    assert_eq!(string(attr(a, "http.request.method")), Some("_OTHER"));
    assert_eq!(
        string(attr(a, "http.request.method_original")),
        Some("PURGE")
    );
    assert_eq!(
        string(attr(a, "url.path")).map(str::len),
        Some(MAX_PATH_BYTES)
    );
    assert_eq!(string(attr(a, "server.address")), Some("ünï\"code"));
    assert_eq!(int(attr(a, "http.response.status_code")), Some(503));
    assert!(attr(a, "upstream_cluster").is_none());
}

/// The check can fail: base64 ids (protobuf's own JSON mapping) or enum names are refused.
#[test]
fn the_official_parser_refuses_what_the_otlp_spec_forbids() {
    let span = |id: &str, kind: &str| {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{id}","spanId":"a2fb4a1d1a96d312","name":"x","kind":{kind},"startTimeUnixNano":"1","endTimeUnixNano":"2"}}]}}]}}]}}"#
        )
    };
    let ok = span("463ac35c9f6413ad48485a3953bb6124", "2");
    assert!(serde_json::from_str::<ExportTraceServiceRequest>(&ok).is_ok());
    let base64 = span("RjrDXJ9kE61ISFo5U7thJA==", "2");
    assert!(serde_json::from_str::<ExportTraceServiceRequest>(&base64).is_err());
    let named = span("463ac35c9f6413ad48485a3953bb6124", r#""SPAN_KIND_SERVER""#);
    assert!(serde_json::from_str::<ExportTraceServiceRequest>(&named).is_err());
}
