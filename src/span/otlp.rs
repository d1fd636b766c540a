//! OTLP/HTTP with the JSON encoding (`POST /v1/traces`): the OpenTelemetry Collector, Tempo,
//! Jaeger 1.35+.

use super::FinishedSpan;
use crate::text::push_json_str;
use crate::workload::{NodeInfo, Workload, UNKNOWN};

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
        let mut attrs = Attributes {
            out: &mut json,
            first: true,
        };
        for (k, v) in &attributes {
            attrs.str(k, v);
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
/// (as Envoy's tracers name it); status ERROR (2) on 5xx, unset otherwise. A gRPC call follows
/// the RPC conventions (`span_name`, `rpc_attributes`, `push_status`).
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
    out.push_str(",\"name\":");
    push_json_str(out, &span_name(s));
    out.push_str(",\"kind\":2,\"startTimeUnixNano\":\"");
    out.push_str(&s.start_ns.to_string());
    out.push_str("\",\"endTimeUnixNano\":\"");
    out.push_str(&s.end_ns.max(s.start_ns).to_string());
    out.push_str("\",\"attributes\":[");
    let mut attrs = Attributes { out, first: true };
    http_attributes(&mut attrs, s);
    rpc_attributes(&mut attrs, s);
    out.push(']');
    push_status(out, s);
    out.push('}');
}

/// The conventions' span name: `$rpc.service/$rpc.method` for a gRPC call, else the method (or
/// `HTTP` for one they do not know).
fn span_name(s: &FinishedSpan) -> String {
    match s.rpc() {
        Some((service, method)) => format!("{service}/{method}"),
        None => known_method(s).unwrap_or("HTTP").to_string(),
    }
}

fn known_method(s: &FinishedSpan) -> Option<&str> {
    s.line
        .method
        .as_deref()
        .filter(|m| KNOWN_METHODS.contains(m))
}

/// The HTTP semantic-convention attributes, `upstream_cluster` and the caller's trace id.
fn http_attributes(attrs: &mut Attributes, s: &FinishedSpan) {
    if let Some(m) = s.line.method.as_deref() {
        attrs.str("http.request.method", known_method(s).unwrap_or("_OTHER"));
        if known_method(s).is_none() {
            attrs.str("http.request.method_original", m);
        }
    }
    if let Some(p) = &s.line.path {
        attrs.str("url.path", p);
    }
    let authority = s.line.authority.as_deref();
    if let Some((host, port)) = authority.and_then(crate::authority::split_host_port) {
        attrs.str("server.address", host);
        if let Some(port) = port.and_then(|p| p.parse::<u16>().ok()) {
            attrs.int("server.port", port.into());
        }
    }
    if let Some(code) = s.status {
        attrs.int("http.response.status_code", code.into());
    }
    if let Some(c) = &s.upstream_cluster {
        attrs.str("upstream_cluster", c);
    }
    if let Some(t) = s.caller_trace_id {
        attrs.str("trace_inject.caller_trace_id", &t.to_hex32());
    }
}

/// The RPC conventions' attributes of a gRPC call.
fn rpc_attributes(attrs: &mut Attributes, s: &FinishedSpan) {
    let Some(code) = s.grpc_status else {
        return;
    };
    attrs.str("rpc.system", "grpc");
    if let Some((service, method)) = s.rpc() {
        attrs.str("rpc.service", service);
        attrs.str("rpc.method", method);
    }
    attrs.int("rpc.grpc.status_code", code.into());
}

/// A gRPC server span fails on the conventions' server errors (a 200 carries them all); an HTTP
/// one on a 5xx.
fn push_status(out: &mut String, s: &FinishedSpan) {
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
}

/// An OTLP `attributes` array being written: commas between entries.
struct Attributes<'a> {
    out: &'a mut String,
    first: bool,
}

impl Attributes<'_> {
    fn key(&mut self, key: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        self.out.push_str("{\"key\":");
        push_json_str(self.out, key);
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(",\"value\":{\"stringValue\":");
        push_json_str(self.out, value);
        self.out.push_str("}}");
    }

    /// `intValue` is an int64: a decimal string in OTLP JSON.
    fn int(&mut self, key: &str, value: u64) {
        self.key(key);
        self.out.push_str(",\"value\":{\"intValue\":\"");
        self.out.push_str(&value.to_string());
        self.out.push_str("\"}}");
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

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
}
