//! Ids, headers and a workload shared by every test, unit and e2e (`trace_inject::fixtures`):
//! one name per format and meaning. Not part of the filter's behaviour (the module's code is
//! dropped from the .wasm, nothing calls it).
#![allow(dead_code)]

use crate::context::{Sampling, TraceContext};
use crate::headers::TraceHeaders;
use crate::ids::{IdSource, SpanId, TraceId};
use crate::workload::Workload;

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
/// A third trace and span, for `b3` beside the two above.
pub const B3_SINGLE_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
pub const B3_SINGLE_SPAN: &str = "e457b5a2e4d86bd1";
/// A request id Envoy marked traced (15th character `9`: random sampling).
pub const TRACED_REQUEST_ID: &str = "83733a38-4bd4-9cc2-8e5b-1d5f6b7a8c9d";

/// The trace headers of a request with these (name, value) pairs.
pub fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> TraceHeaders<'a> {
    TraceHeaders::collect(pairs.iter().map(|(n, v)| (*n, v.as_bytes())))
}

/// A workload with every field known.
pub fn workload() -> Workload {
    Workload {
        service: "checkout".into(),
        namespace: "shop".into(),
        version: "v2".into(),
        workload: "checkout-v2".into(),
        cluster: "Kubernetes".into(),
        mesh: "cluster.local".into(),
        pod: "checkout-v2-7d9f8c-abcde".into(),
    }
}

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
