//! Models of Envoy's tracers: what each does with a request's incoming trace headers, so the
//! filter knows, before the response is sent, which trace the request ends up in on a hop where
//! that tracer runs, and which headers the tracer writes upstream. Each tracer extracts before
//! any HTTP filter runs, so only the headers as they arrived matter. One model per tracer, each
//! measured (docs/tracers.md).

pub mod datadog;
pub mod opentelemetry;
pub mod zipkin;

use crate::context::{Format, FormatSet};
use crate::headers::TraceHeaders;

/// An Envoy tracer a hop can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TracerKind {
    /// `envoy.tracers.zipkin`; `reads_w3c` is its `USE_B3_WITH_W3C_PROPAGATION` option (it then
    /// also joins and writes `traceparent`).
    Zipkin { reads_w3c: bool },
    /// `envoy.tracers.opentelemetry`: W3C only.
    OpenTelemetry,
    /// `envoy.tracers.datadog`: Datadog's headers, then W3C; writes both.
    Datadog,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The tracer continues this trace (the id as Envoy parsed it; may be 0 where Envoy accepts
    /// an all-zero id).
    Join(u128),
    /// The tracer starts a new trace with an id this filter cannot know in time.
    NewRoot,
    /// The tracer makes no span and injects nothing: the filter's context is what flows.
    NoSpan,
}

impl Outcome {
    /// The joined trace id, or `None` (new root, no span, or Envoy's accepted all-zero).
    pub fn trace_id(self) -> Option<u128> {
        match self {
            Outcome::Join(t) if t != 0 => Some(t),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prediction {
    pub outcome: Outcome,
    /// The formats the router writes with the tracer's context (nothing when `NoSpan`).
    pub writes: FormatSet,
}

impl TracerKind {
    pub fn predict(self, h: &TraceHeaders) -> Prediction {
        match self {
            TracerKind::Zipkin { reads_w3c } => zipkin::predict(h, reads_w3c),
            TracerKind::OpenTelemetry => opentelemetry::predict(h),
            TracerKind::Datadog => datadog::predict(h),
        }
    }

    /// Whether every tracer a hop may run would make a span for these incoming headers (and
    /// write its ids upstream): only then does a request that went up unchanged prove there is
    /// no tracer. (Zipkin's two options differ only in whom they join, never in making a span.)
    pub fn every_tracer_writes(h: &TraceHeaders) -> bool {
        [
            TracerKind::Zipkin { reads_w3c: false },
            TracerKind::OpenTelemetry,
        ]
        .into_iter()
        .all(|k| k.predict(h).outcome != Outcome::NoSpan)
    }

    /// The tracer that replaced what this filter left, told apart by which formats changed:
    /// Zipkin rewrites B3 (and, with W3C propagation, `traceparent`), OpenTelemetry only
    /// `traceparent`, Datadog `traceparent` and its own headers (`datadog_written`).
    pub fn from_replaced(replaced: FormatSet, datadog_written: bool) -> Option<TracerKind> {
        let b3 = replaced.contains(Format::B3Multi) || replaced.contains(Format::B3Single);
        let w3c = replaced.contains(Format::W3c);
        match (b3, w3c) {
            (true, reads_w3c) => Some(TracerKind::Zipkin { reads_w3c }),
            (false, true) if datadog_written => Some(TracerKind::Datadog),
            (false, true) => Some(TracerKind::OpenTelemetry),
            (false, false) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TracerKind::Zipkin { reads_w3c: false } => "zipkin",
            TracerKind::Zipkin { reads_w3c: true } => "zipkin (USE_B3_WITH_W3C_PROPAGATION)",
            TracerKind::OpenTelemetry => "opentelemetry",
            TracerKind::Datadog => "datadog",
        }
    }

    /// The name the plugin configuration uses for it.
    pub fn setting(self) -> &'static str {
        match self {
            TracerKind::Zipkin { reads_w3c: false } => "\"tracer\": \"zipkin\"",
            TracerKind::Zipkin { reads_w3c: true } => {
                "\"tracer\": \"zipkin\", \"envoy_trace_context_option\": \"USE_B3_WITH_W3C_PROPAGATION\""
            }
            TracerKind::OpenTelemetry => "\"tracer\": \"opentelemetry\"",
            // No setting names it: the filter learns it.
            TracerKind::Datadog => "no \"tracer\" (auto)",
        }
    }
}
