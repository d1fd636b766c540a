//! The filter's own spans (when `export` is on): what one finished span holds, the bounded
//! per-worker buffer they wait in, and the Zipkin v2 JSON they are posted as.

use std::collections::VecDeque;

use crate::ids::{SpanId, TraceId};
use crate::log_record::push_json_str;

#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    pub trace_id: TraceId,
    pub id: SpanId,
    pub parent_id: Option<SpanId>,
    pub name: String,
    /// Microseconds since the epoch, and microseconds long (Zipkin's units).
    pub timestamp_us: u64,
    pub duration_us: u64,
    pub debug: bool,
    /// This request's tags; those every span of the worker shares are given to `zipkin_json`.
    pub tags: Vec<(&'static str, String)>,
}

/// Spans waiting for the next flush. Past `limit` the oldest is dropped (and counted): memory is
/// bounded whatever the collector does.
#[derive(Debug)]
pub struct SpanBuffer {
    spans: VecDeque<FinishedSpan>,
    limit: usize,
}

impl SpanBuffer {
    pub fn new(limit: usize) -> SpanBuffer {
        SpanBuffer {
            spans: VecDeque::new(),
            limit: limit.max(1),
        }
    }

    /// Adds a span; returns how many old ones were dropped to make room (0 or 1).
    pub fn push(&mut self, span: FinishedSpan) -> u64 {
        let mut dropped = 0;
        while self.spans.len() >= self.limit {
            self.spans.pop_front();
            dropped += 1;
        }
        self.spans.push_back(span);
        dropped
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Takes up to `n` of the oldest spans.
    pub fn take(&mut self, n: usize) -> Vec<FinishedSpan> {
        let n = n.min(self.spans.len());
        self.spans.drain(..n).collect()
    }
}

/// A Zipkin v2 JSON array (`POST /api/v2/spans`), every span a SERVER span of `service`, with
/// `common` tags (the workload) added to each.
pub fn zipkin_json(spans: &[FinishedSpan], service: &str, common: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(512 * spans.len() + 2);
    out.push('[');
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"traceId\":\"");
        out.push_str(&s.trace_id.to_b3());
        out.push_str("\",\"id\":\"");
        out.push_str(&s.id.to_hex());
        out.push('"');
        if let Some(p) = s.parent_id {
            out.push_str(",\"parentId\":\"");
            out.push_str(&p.to_hex());
            out.push('"');
        }
        out.push_str(",\"kind\":\"SERVER\",\"name\":");
        push_json_str(&mut out, &s.name);
        out.push_str(",\"timestamp\":");
        out.push_str(&s.timestamp_us.to_string());
        out.push_str(",\"duration\":");
        out.push_str(&s.duration_us.max(1).to_string());
        if s.debug {
            out.push_str(",\"debug\":true");
        }
        out.push_str(",\"localEndpoint\":{\"serviceName\":");
        push_json_str(&mut out, service);
        out.push_str("},\"tags\":{");
        let tags = s.tags.iter().map(|(k, v)| (*k, v.as_str()));
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
    use super::*;

    fn span(n: u64) -> FinishedSpan {
        FinishedSpan {
            trace_id: TraceId::parse(b"463ac35c9f6413ad48485a3953bb6124").unwrap(),
            id: SpanId(n),
            parent_id: (n > 1).then_some(SpanId(1)),
            name: "localhost:10000".into(),
            timestamp_us: 1_700_000_000_000_000,
            duration_us: 1234,
            debug: n == 3,
            tags: vec![("http.method", "GET".into()), ("http.path", "/a\"b".into())],
        }
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
        assert_eq!(v[0]["traceId"], "463ac35c9f6413ad48485a3953bb6124");
        assert_eq!(v[0]["id"], "0000000000000001");
        assert!(v[0].get("parentId").is_none(), "a root has no parentId");
        assert_eq!(v[1]["parentId"], "0000000000000001");
        assert_eq!(v[1]["kind"], "SERVER");
        assert_eq!(v[1]["duration"], 1234);
        assert_eq!(v[1]["localEndpoint"]["serviceName"], "checkout");
        assert_eq!(v[1]["tags"]["http.path"], "/a\"b");
        assert_eq!(v[1]["tags"]["namespace"], "shop");
        assert_eq!(v[2]["debug"], true);
        assert_eq!(zipkin_json(&[], "x", &[]), "[]");
    }

    #[test]
    fn buffer_is_bounded_and_drops_the_oldest() {
        let mut b = SpanBuffer::new(2);
        assert_eq!(b.push(span(1)), 0);
        assert_eq!(b.push(span(2)), 0);
        assert_eq!(b.push(span(3)), 1);
        assert_eq!(b.len(), 2);
        let batch = b.take(10);
        assert_eq!(batch.iter().map(|s| s.id.0).collect::<Vec<_>>(), vec![2, 3]);
        assert!(b.is_empty());
        b.push(span(4));
        b.push(span(5));
        assert_eq!(b.take(1)[0].id.0, 4);
    }
}
