//! Zipkin v2 JSON (`POST /api/v2/spans`): Jaeger's :9411, Zipkin, the OpenTelemetry Collector's
//! zipkin receiver.

use super::FinishedSpan;
use crate::ids::TraceId;
use crate::text::push_json_str;

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
