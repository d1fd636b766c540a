//! OTLP/HTTP trace export (`POST /v1/traces`), decoded with the `opentelemetry-proto` crate's
//! types (prost for protobuf, its serde derives for JSON), turned into the collector's Zipkin v2
//! spans so that one store, one query API and one tree view serve both protocols.
//!
//! Mapping (what the OpenTelemetry Collector's Zipkin exporter does, reduced to what we show):
//! trace and span ids as lower hex; `kind` SERVER/CLIENT/PRODUCER/CONSUMER (INTERNAL and
//! UNSPECIFIED have no Zipkin kind); times in microseconds; the resource's `service.name` as
//! `localEndpoint.serviceName`; every attribute as a string tag; a non-empty `trace_state` as the
//! tag `w3c.tracestate`.

use crate::zipkin::{Endpoint, Span};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

/// The two encodings OTLP/HTTP defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From a `content-type` header value; `None` for anything OTLP/HTTP does not define.
    pub fn from_content_type(ct: &str) -> Option<Encoding> {
        match ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "application/x-protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// The success body OTLP/HTTP asks for: an `ExportTraceServiceResponse` in the request's
    /// encoding.
    pub fn success_body(self) -> Vec<u8> {
        match self {
            Encoding::Protobuf => ExportTraceServiceResponse::default().encode_to_vec(),
            // The crate's serde spells the empty response `{"partialSuccess":null}`; `{}` is the
            // same message and what collectors answer.
            Encoding::Json => b"{}".to_vec(),
        }
    }
}

/// Decodes an export request body.
pub fn decode(encoding: Encoding, body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| format!("not an OTLP protobuf ExportTraceServiceRequest: {e}")),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| format!("not an OTLP JSON ExportTraceServiceRequest: {e}")),
    }
}

/// The request's spans as normalised Zipkin v2 spans. A span whose ids are invalid (empty, wrong
/// length, all zeros) is rejected with the whole request, as Zipkin rejects a bad span.
pub fn to_zipkin(req: &ExportTraceServiceRequest) -> Result<Vec<Span>, String> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let service = rs.resource.as_ref().and_then(|r| {
            r.attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(any_to_string)
        });
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                out.push(span_to_zipkin(s, service.as_deref())?);
            }
        }
    }
    Ok(out)
}

fn span_to_zipkin(
    s: &opentelemetry_proto::tonic::trace::v1::Span,
    service: Option<&str>,
) -> Result<Span, String> {
    if s.trace_id.len() != 16 {
        return Err(format!("trace_id has {} bytes, not 16", s.trace_id.len()));
    }
    if s.span_id.len() != 8 {
        return Err(format!("span_id has {} bytes, not 8", s.span_id.len()));
    }
    let kind = match SpanKind::try_from(s.kind) {
        Ok(SpanKind::Server) => Some("SERVER"),
        Ok(SpanKind::Client) => Some("CLIENT"),
        Ok(SpanKind::Producer) => Some("PRODUCER"),
        Ok(SpanKind::Consumer) => Some("CONSUMER"),
        _ => None,
    };
    let mut tags: std::collections::BTreeMap<String, String> = s
        .attributes
        .iter()
        .map(|KeyValue { key, value, .. }| {
            (
                key.clone(),
                value.as_ref().map(any_to_string).unwrap_or_default(),
            )
        })
        .collect();
    if !s.trace_state.is_empty() {
        tags.insert("w3c.tracestate".into(), s.trace_state.clone());
    }
    let start_us = s.start_time_unix_nano / 1000;
    let end_us = s.end_time_unix_nano / 1000;
    let span = Span {
        trace_id: hex(&s.trace_id),
        id: hex(&s.span_id),
        parent_id: (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id)),
        name: (!s.name.is_empty()).then(|| s.name.clone()),
        kind: kind.map(str::to_string),
        timestamp: (start_us > 0).then_some(start_us),
        duration: (end_us > start_us).then(|| end_us - start_us),
        local_endpoint: service.map(|n| Endpoint {
            service_name: Some(n.to_string()),
            ..Endpoint::default()
        }),
        tags,
        ..Span::default()
    };
    span.normalize()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An attribute value as a tag string: strings as they are, the rest in their JSON spelling.
fn any_to_string(v: &AnyValue) -> String {
    match &v.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => hex(b),
        Some(Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(any_to_string).collect();
            serde_json::to_string(&items).unwrap_or_default()
        }
        Some(Value::KvlistValue(kv)) => {
            let m: serde_json::Map<String, serde_json::Value> = kv
                .values
                .iter()
                .map(|kv| {
                    let s = kv.value.as_ref().map(any_to_string).unwrap_or_default();
                    (kv.key.clone(), serde_json::Value::String(s))
                })
                .collect();
            serde_json::Value::Object(m).to_string()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    pub(crate) fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    /// An export request like Envoy's: one resource with service.name, one scope, two spans.
    pub(crate) fn envoy_like_request() -> ExportTraceServiceRequest {
        let span = |id: u8, parent: Option<u8>, kind: SpanKind| {
            opentelemetry_proto::tonic::trace::v1::Span {
                trace_id: vec![
                    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e,
                    0x0e, 0x47, 0x36,
                ],
                span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
                parent_span_id: parent
                    .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
                    .unwrap_or_default(),
                trace_state: if parent.is_none() {
                    "a=1,b=2".into()
                } else {
                    String::new()
                },
                name: "ingress".into(),
                kind: kind as i32,
                start_time_unix_nano: 1_700_000_000_000_000_000,
                end_time_unix_nano: 1_700_000_000_002_000_000,
                attributes: vec![
                    kv("http.status_code", "200"),
                    kv("upstream_cluster", "echo"),
                    KeyValue {
                        key: "retries".into(),
                        value: Some(AnyValue {
                            value: Some(Value::IntValue(2)),
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", "backend.default"),
                        kv("telemetry.sdk.name", "envoy"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(1, None, SpanKind::Server),
                        span(2, Some(1), SpanKind::Client),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn protobuf_and_json_give_the_same_spans() {
        let req = envoy_like_request();
        let from_pb =
            to_zipkin(&decode(Encoding::Protobuf, &req.encode_to_vec()).unwrap()).unwrap();
        let json = serde_json::to_vec(&req).unwrap();
        // OTLP/JSON spells ids as hex, not base64 (the spec's exception to protobuf JSON).
        assert!(String::from_utf8_lossy(&json).contains("4bf92f3577b34da6a3ce929d0e0e4736"));
        let from_json = to_zipkin(&decode(Encoding::Json, &json).unwrap()).unwrap();
        assert_eq!(from_pb, from_json);
        assert_eq!(from_pb.len(), 2);
        let root = &from_pb[0];
        assert_eq!(root.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(root.id, "0000000000000001");
        assert_eq!(root.parent_id, None);
        assert_eq!(root.kind.as_deref(), Some("SERVER"));
        assert_eq!(root.service_name(), Some("backend.default"));
        assert_eq!(root.timestamp, Some(1_700_000_000_000_000));
        assert_eq!(root.duration, Some(2000));
        assert_eq!(root.tag("upstream_cluster"), Some("echo"));
        assert_eq!(root.tag("retries"), Some("2"));
        assert_eq!(root.tag("w3c.tracestate"), Some("a=1,b=2"));
        assert_eq!(from_pb[1].parent_id.as_deref(), Some("0000000000000001"));
        assert_eq!(from_pb[1].kind.as_deref(), Some("CLIENT"));
    }

    #[test]
    fn rejects_garbage_and_bad_ids() {
        assert!(decode(Encoding::Protobuf, b"\xff\xff\xff").is_err());
        assert!(decode(Encoding::Json, b"[1,2]").is_err());
        let mut req = envoy_like_request();
        req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![0; 16];
        assert!(to_zipkin(&req).is_err(), "all-zero trace id");
        req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1; 8];
        assert!(to_zipkin(&req).is_err(), "64-bit trace id is not OTLP");
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type("Application/JSON; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
        assert!(Encoding::Protobuf.success_body().is_empty());
        assert_eq!(Encoding::Json.success_body(), b"{}");
    }
}
