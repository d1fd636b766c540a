//! Ids and header values shared by the unit tests, one name per format and meaning.
#![allow(dead_code)]

use crate::context::{Sampling, TraceContext};
use crate::ids::{IdSource, SpanId, TraceId};

/// A 128-bit trace id, as B3 and W3C write it.
pub const T32: &str = "463ac35c9f6413ad48485a3953bb6124";
/// A 64-bit B3 trace id.
pub const T16: &str = "48485a3953bb6124";
/// A span id.
pub const S: &str = "a2fb4a1d1a96d312";
/// A parent span id.
pub const P: &str = "0020000000000001";
/// The W3C example trace: its trace id, parent id, and `traceparent` (sampled).
pub const W3C_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const W3C_PARENT: &str = "00f067aa0ba902b7";
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A sampled context at (`trace`, `span`).
pub fn ctx(trace: &str, span: &str) -> TraceContext {
    TraceContext {
        trace_id: TraceId::parse(trace.as_bytes()).unwrap_or(TraceId::new_128(1)),
        span_id: SpanId::parse(span.as_bytes()).unwrap_or(SpanId(1)),
        parent_span_id: None,
        sampling: Sampling::Accept,
        random: false,
    }
}

/// Deterministic ids: 1, 2, 3, ...
pub struct Counter(pub u64);

impl IdSource for Counter {
    fn next_u64(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}
