//! The trace context every format is parsed into and written from.

use crate::ids::{SpanId, TraceId};

/// B3's four sampling states; W3C's `sampled` flag is `Accept` or `Deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// No decision: the receiver decides (B3 only; W3C writes it as "not recorded", flag 0).
    Defer,
    Deny,
    Accept,
    /// Force trace: implies Accept.
    Debug,
}

impl Sampling {
    /// W3C's `sampled` bit: the caller may have recorded.
    pub fn sampled(self) -> bool {
        matches!(self, Sampling::Accept | Sampling::Debug)
    }

    /// For logs: `true`/`false`, or `None` when deferred.
    pub fn decision(self) -> Option<bool> {
        match self {
            Sampling::Defer => None,
            s => Some(s.sampled()),
        }
    }
}

/// One trace context: the position of this request in a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The caller's span: B3 `SpanId`, W3C `parent-id`.
    pub span_id: SpanId,
    /// B3 `ParentSpanId`; W3C has no such field.
    pub parent_span_id: Option<SpanId>,
    pub sampling: Sampling,
}

/// The trace-context header formats this filter reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// B3 multi: `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`, `x-b3-flags`.
    #[serde(rename = "b3")]
    B3Multi,
    /// B3 single: `b3: {traceid}-{spanid}[-{sampling}[-{parentspanid}]]`.
    #[serde(rename = "b3-single")]
    B3Single,
    /// W3C Trace Context: `traceparent` (+ `tracestate`).
    #[serde(rename = "w3c")]
    W3c,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::B3Single, Format::B3Multi, Format::W3c];

    /// The name used in config, logs (`context`) and docs.
    pub fn name(self) -> &'static str {
        match self {
            Format::B3Multi => "b3",
            Format::B3Single => "b3-single",
            Format::W3c => "w3c",
        }
    }
}

/// What one format's headers said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Absent,
    /// Present but breaking a rule of its spec; the reason is for the debug log.
    Malformed(&'static str),
    /// A sampling decision without identifiers (`b3: 0`, `X-B3-Sampled: 1` alone, ...).
    SamplingOnly(Sampling),
    Context(TraceContext),
}

impl TraceContext {
    /// Whether `other`, as another format carries it, says exactly what this context says. B3
    /// can express every field (parent span, deferred and debug sampling), so a B3 format must
    /// match all of them; W3C only trace id, span id and the sampled bit (a 64-bit trace id
    /// equals its zero-padded 128-bit form).
    pub fn agrees_with(&self, other: &TraceContext, other_is_b3: bool) -> bool {
        let ids = self.trace_id.same_trace(&other.trace_id) && self.span_id == other.span_id;
        if other_is_b3 {
            ids && self.parent_span_id == other.parent_span_id && self.sampling == other.sampling
        } else {
            ids && self.sampling.sampled() == other.sampling.sampled()
        }
    }
}
