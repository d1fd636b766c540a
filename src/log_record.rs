//! The one structured log line per request: JSON, written in `on_log`.

use crate::text::JsonObject;
use crate::workload::Workload;

/// Longest path written on the log line, in bytes (Envoy accepts request lines of up to 60 KiB).
pub const MAX_LOG_PATH_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord<'a> {
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub sampled: Option<bool>,
    /// How the context arrived: `b3`, `b3-single`, `w3c`, `injected`, `repaired`.
    pub context: &'a str,
    /// The context was read leniently and went on in canonical form.
    pub normalised: bool,
    /// The caller's context was not trusted: a new trace; its trace id, when it sent one.
    pub restarted: bool,
    pub caller_trace_id: Option<String>,
    pub workload: &'a Workload,
    /// Bounded and valid UTF-8 already (`text::client_text`).
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    pub status: Option<u64>,
    /// A gRPC call's status code; absent for plain HTTP.
    pub grpc_status: Option<u32>,
    /// Microseconds; written as milliseconds with three decimals.
    pub duration_us: Option<u64>,
    pub upstream_cluster: Option<&'a str>,
}

/// `path` without its query string (it may carry tokens or personal data) unless asked.
pub fn loggable_path(path: &[u8], include_query: bool) -> &[u8] {
    if include_query {
        return path;
    }
    match path.iter().position(|&c| c == b'?' || c == b'#') {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    }
}

impl LogRecord<'_> {
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(384);
        let mut o = JsonObject::open(&mut out);
        self.trace_fields(&mut o);
        for (k, v) in self.workload.fields() {
            o.str(k, v);
        }
        self.request_fields(&mut o);
        o.close();
        out
    }

    /// The context that went upstream, and how it arrived.
    fn trace_fields(&self, o: &mut JsonObject) {
        o.opt_str("trace_id", self.trace_id.as_deref());
        o.opt_str("span_id", self.span_id.as_deref());
        o.opt_raw(
            "sampled",
            self.sampled.map(|s| if s { "true" } else { "false" }),
        );
        o.str("context", self.context);
        if self.normalised {
            o.key("normalised").push_str("true");
        }
        if self.restarted {
            o.key("restarted").push_str("true");
        }
        if let Some(t) = &self.caller_trace_id {
            o.str("caller_trace_id", t);
        }
    }

    /// The request line and how the request ended.
    fn request_fields(&self, o: &mut JsonObject) {
        o.opt_str("method", self.method);
        o.opt_str("path", self.path);
        o.opt_raw("status", self.status.map(|s| s.to_string()).as_deref());
        if let Some(g) = self.grpc_status {
            o.key("grpc_status").push_str(&g.to_string());
        }
        o.opt_raw("duration_ms", self.duration_us.map(millis).as_deref());
        o.opt_str("upstream_cluster", self.upstream_cluster);
    }
}

/// Microseconds as milliseconds with three decimals, in integer arithmetic: float formatting
/// would add ~14 KB to the module.
fn millis(us: u64) -> String {
    let frac = us % 1000;
    let digit = |d: u64| char::from(b'0' + (d % 10) as u8);
    format!(
        "{}.{}{}{}",
        us / 1000,
        digit(frac / 100),
        digit(frac / 10),
        digit(frac)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::workload;

    #[test]
    fn a_complete_record_is_json_with_every_field() {
        let w = workload();
        let r = LogRecord {
            trace_id: Some("463ac35c9f6413ad48485a3953bb6124".into()),
            span_id: Some("a2fb4a1d1a96d312".into()),
            sampled: Some(true),
            context: "b3",
            normalised: false,
            restarted: false,
            caller_trace_id: None,
            workload: &w,
            method: Some("GET"),
            path: Some("/cart"),
            status: Some(200),
            grpc_status: Some(5),
            duration_us: Some(1235),
            upstream_cluster: Some("outbound|80||backend.default.svc.cluster.local"),
        };
        let json = r.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["trace_id"], "463ac35c9f6413ad48485a3953bb6124");
        assert_eq!(v["sampled"], true);
        assert_eq!(v["context"], "b3");
        assert_eq!(v["service"], "checkout");
        assert_eq!(v["pod"], "checkout-v2-7d9f8c-abcde");
        assert_eq!(v["path"], "/cart");
        assert_eq!(v["status"], 200);
        assert_eq!(v["grpc_status"], 5);
        assert!(json.contains(r#""status":200,"grpc_status":5,"#), "{json}");
        assert_eq!(v["duration_ms"], 1.235);
        assert_eq!(
            v["upstream_cluster"],
            "outbound|80||backend.default.svc.cluster.local"
        );
        assert!(json.starts_with("{\"trace_id\":"), "{json}");
    }

    #[test]
    fn unknowns_are_null_and_strings_are_escaped() {
        let w = workload();
        let r = LogRecord {
            trace_id: None,
            span_id: None,
            sampled: None,
            context: "injected",
            normalised: false,
            restarted: false,
            caller_trace_id: None,
            workload: &w,
            method: None,
            path: Some("/a\"b\\c\n\u{1}"),
            status: None,
            grpc_status: None,
            duration_us: None,
            upstream_cluster: None,
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(v["trace_id"].is_null() && v["sampled"].is_null() && v["status"].is_null());
        assert!(v["duration_ms"].is_null());
        assert!(v.get("grpc_status").is_none(), "absent for plain HTTP");
        for (us, ms) in [
            (0, "0.000"),
            (7, "0.007"),
            (1050, "1.050"),
            (123_456_789, "123456.789"),
        ] {
            let r = LogRecord {
                duration_us: Some(us),
                ..r.clone()
            };
            assert!(
                r.to_json().contains(&format!("\"duration_ms\":{ms},")),
                "{us}"
            );
        }
        assert_eq!(v["path"], "/a\"b\\c\n\u{1}");
        // C1 controls and bidi overrides reach a log viewer escaped.
        let tricky = LogRecord {
            path: Some("/a\u{9b}31m\u{202e}b"),
            ..r.clone()
        };
        let json = tricky.to_json();
        assert!(json.contains(r#""/a\u009b31m\u202eb""#), "{json}");
    }

    #[test]
    fn query_kept_only_when_asked() {
        assert_eq!(loggable_path(b"/a?b=c", true), b"/a?b=c");
        assert_eq!(loggable_path(b"/a?b=c", false), b"/a");
        assert_eq!(loggable_path(b"/a#frag", false), b"/a");
        assert_eq!(loggable_path(b"", false), b"");
    }
}
