//! Zipkin v2 JSON (`POST /api/v2/spans`): Jaeger's :9411, Zipkin, the OpenTelemetry Collector's
//! zipkin receiver.

use super::FinishedSpan;
use crate::ids::TraceId;
use crate::text::JsonObject;

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
        push_span(&mut out, s, service, common);
    }
    out.push(']');
    out
}

fn push_span(out: &mut String, s: &FinishedSpan, service: &str, common: &[(&str, &str)]) {
    let mut o = JsonObject::open(out);
    o.quoted("traceId", |out| s.trace_id.push_b3(out));
    o.quoted("id", |out| s.id.push_hex(out));
    if let Some(p) = s.parent_id {
        o.quoted("parentId", |out| p.push_hex(out));
    }
    o.str("kind", "SERVER");
    o.str("name", s.line.authority.as_deref().unwrap_or("-"));
    o.key("timestamp")
        .push_str(&(s.start_ns / 1000).to_string());
    let duration_us = (s.end_ns.saturating_sub(s.start_ns) / 1000).max(1);
    o.key("duration").push_str(&duration_us.to_string());
    if s.debug {
        o.key("debug").push_str("true");
    }
    let mut endpoint = JsonObject::open(o.key("localEndpoint"));
    endpoint.str("serviceName", service);
    endpoint.close();
    let mut tags = JsonObject::open(o.key("tags"));
    for (k, v) in own_tags(s)
        .iter()
        .filter_map(|(k, v)| Some((k, v.as_deref()?)))
    {
        tags.str(k, v);
    }
    for (k, v) in common {
        tags.str(k, v);
    }
    tags.close();
    o.close();
}

/// The span's own tags (absent ones `None`). As Envoy's own tracer tags a response: `error` on
/// a 5xx, and on a gRPC status other than OK.
fn own_tags(s: &FinishedSpan) -> [(&'static str, Option<String>); 7] {
    let status = s.status.map(|c| c.to_string());
    let error = match (&status, s.grpc_status) {
        (_, Some(g)) if g != 0 => Some("true".to_string()),
        (Some(code), _) if s.is_error() => Some(code.clone()),
        _ => None,
    };
    [
        ("http.method", s.line.method.clone()),
        ("http.path", s.line.path.clone()),
        ("http.status_code", status),
        ("grpc.status_code", s.grpc_status.map(|c| c.to_string())),
        ("error", error),
        ("upstream_cluster", s.upstream_cluster.clone()),
        ("caller_trace_id", s.caller_trace_id.map(TraceId::to_hex32)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::HttpFields;
    use super::*;

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
}
