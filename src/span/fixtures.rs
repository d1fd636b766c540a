//! Spans the span tests share.

use super::*;
use crate::context::{Sampling, TraceContext};
use crate::ids::{SpanId, TraceId};

pub use crate::fixtures::{workload, T32};

pub fn ctx(n: u64) -> TraceContext {
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

pub fn line(method: Option<&str>, path: Option<&str>, authority: Option<&str>) -> RequestLine {
    RequestLine::new(
        method.map(str::as_bytes),
        path.map(str::as_bytes),
        authority.map(str::as_bytes),
    )
}

pub fn span_with(n: u64, http: HttpFields) -> FinishedSpan {
    FinishedSpan::new(
        &ctx(n),
        1_700_000_000_000_000_000,
        1_700_000_000_001_234_567,
        http,
    )
}

pub fn span(n: u64) -> FinishedSpan {
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
