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
    /// W3C Level 2 `random` trace-flag: the trace id's right 7 bytes are random. Set for the
    /// traces this filter starts; kept from an incoming `traceparent`; unknown from B3.
    pub random: bool,
}

/// The trace-context header formats this filter reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub enum Format {
    /// B3 multi: `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`, `x-b3-flags`.
    #[cfg_attr(test, serde(rename = "b3"))]
    B3Multi,
    /// B3 single: `b3: {traceid}-{spanid}[-{sampling}[-{parentspanid}]]`.
    #[cfg_attr(test, serde(rename = "b3-single"))]
    B3Single,
    /// W3C Trace Context: `traceparent` (+ `tracestate`).
    #[cfg_attr(test, serde(rename = "w3c"))]
    W3c,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::B3Single, Format::B3Multi, Format::W3c];

    /// Position in `ALL`, for per-format tables.
    pub fn index(self) -> usize {
        match self {
            Format::B3Single => 0,
            Format::B3Multi => 1,
            Format::W3c => 2,
        }
    }

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
    /// equals its zero-padded 128-bit form; the `random` flag is a hint, not a position).
    pub fn agrees_with(&self, other: &TraceContext, carries_all: bool) -> bool {
        let ids = self.same_position(other);
        if carries_all {
            ids && self.parent_span_id == other.parent_span_id && self.sampling == other.sampling
        } else {
            ids && self.sampling.sampled() == other.sampling.sampled()
        }
    }

    /// Same trace and same span: the same position in a trace, whatever the sampling says.
    pub fn same_position(&self, other: &TraceContext) -> bool {
        self.trace_id.same_trace(&other.trace_id) && self.span_id == other.span_id
    }
}

/// A set of formats (the outputs; what a tracer writes), checked without allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FormatSet(u8);

impl FormatSet {
    pub const EMPTY: FormatSet = FormatSet(0);

    pub fn of(formats: &[Format]) -> FormatSet {
        formats.iter().fold(FormatSet::EMPTY, |s, f| s.with(*f))
    }

    pub fn with(self, f: Format) -> FormatSet {
        FormatSet(self.0 | 1 << f.index())
    }

    pub fn contains(self, f: Format) -> bool {
        self.0 & (1 << f.index()) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_decision_for_logs() {
        assert_eq!(Sampling::Defer.decision(), None);
        assert_eq!(Sampling::Deny.decision(), Some(false));
        assert_eq!(Sampling::Accept.decision(), Some(true));
        assert_eq!(Sampling::Debug.decision(), Some(true));
    }

    #[test]
    fn names_are_the_config_spellings() {
        for f in Format::ALL {
            let serialized = serde_json::to_string(&f).unwrap_or_default();
            assert_eq!(format!("\"{}\"", f.name()), serialized);
            assert_eq!(Format::ALL.get(f.index()), Some(&f));
        }
    }

    #[test]
    fn a_format_set_is_a_set() {
        let s = FormatSet::of(&[Format::W3c, Format::W3c, Format::B3Multi]);
        assert!(s.contains(Format::W3c) && s.contains(Format::B3Multi));
        assert!(!s.contains(Format::B3Single));
        assert!(!s.is_empty() && FormatSet::EMPTY.is_empty());
        assert_eq!(s.with(Format::W3c), s);
    }
}
