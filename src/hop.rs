//! Whether Envoy's tracer runs on this hop, per worker: fixed by the configuration, or (`auto`)
//! learnt from what requests carried when they completed.
//!
//! What counts as evidence of a tracer: a request that left the filter with exactly one context,
//! or none (the filter's rule), reached `on_log` carrying, in some format, a valid context at
//! another position (trace or span id) — only a tracer's router writes one after the filter;
//! which formats changed tells Zipkin from OpenTelemetry. What counts as evidence of none: a
//! request for which either tracer would have made a span went upstream with exactly what the
//! filter left. Anything else (a local reply, a tracer that makes no span) proves nothing.

use std::cell::Cell;

use crate::context::{Format, FormatSet, TraceContext};
use crate::decision::Mode;
use crate::propagator::Extracted;
use crate::settings::Tracer;
use crate::tracer::TracerKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HopState {
    /// `auto`, nothing seen yet; `zipkin` is the Zipkin tracer it would be (as configured).
    Undecided {
        zipkin: TracerKind,
    },
    Plain,
    Tracer(TracerKind),
}

/// What one completed request says about the hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    Tracer(TracerKind),
    NoTracer,
    Nothing,
}

/// Compares what the filter left (`left`: its context, or none) with what the request carried at
/// the end. `tracer_would_write`: every tracer this hop may run would have made a span (and
/// written its ids) for the incoming headers; `went_upstream`: the request reached an upstream.
pub fn evidence(
    left: Option<&TraceContext>,
    carried: &[Extracted; 3],
    tracer_would_write: bool,
    went_upstream: bool,
) -> Evidence {
    let mut replaced = FormatSet::EMPTY;
    let mut intact = left.is_none();
    for f in Format::ALL {
        if let Some(c) = carried.get(f.index()).and_then(Extracted::context) {
            if left.is_some_and(|l| c.same_position(l)) {
                intact = true;
            } else {
                replaced = replaced.with(f);
            }
        }
    }
    if !replaced.is_empty() {
        return TracerKind::from_replaced(replaced).map_or(Evidence::Nothing, Evidence::Tracer);
    }
    if intact && tracer_would_write && went_upstream {
        Evidence::NoTracer
    } else {
        Evidence::Nothing
    }
}

/// The hop as this worker knows it.
pub struct Hop(Cell<HopState>);

impl Hop {
    pub fn new(tracer: Tracer) -> Hop {
        Hop(Cell::new(match tracer {
            Tracer::Auto { zipkin } => HopState::Undecided { zipkin },
            Tracer::None => HopState::Plain,
            Tracer::Envoy(kind) => HopState::Tracer(kind),
        }))
    }

    pub fn state(&self) -> HopState {
        self.0.get()
    }

    /// The decision's mode; `own_span` when this filter exports its own spans.
    pub fn mode(&self, own_span: bool) -> Mode {
        match self.0.get() {
            HopState::Plain => Mode::Plain { own_span },
            HopState::Undecided { zipkin } => Mode::Undecided { own_span, zipkin },
            HopState::Tracer(kind) => Mode::Tracer(kind),
        }
    }

    /// Learns from one request while undecided; returns the tracer when this request revealed it.
    pub fn learn(&self, e: Evidence) -> Option<TracerKind> {
        if !matches!(self.0.get(), HopState::Undecided { .. }) {
            return None;
        }
        match e {
            Evidence::Tracer(kind) => {
                self.0.set(HopState::Tracer(kind));
                Some(kind)
            }
            Evidence::NoTracer => {
                self.0.set(HopState::Plain);
                None
            }
            Evidence::Nothing => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::TraceHeaders;
    use crate::propagator::extract_all;
    use crate::test_fixtures::{ctx, S, T32};

    fn carried(pairs: &[(&str, &str)]) -> [Extracted; 3] {
        extract_all(&TraceHeaders::collect(
            pairs.iter().map(|(n, v)| (*n, v.as_bytes())),
        ))
    }

    #[test]
    fn replaced_b3_ids_reveal_zipkin_and_which_option() {
        let left = ctx(T32, S);
        let other = "00000000000000000000000000000abc";
        let e = evidence(
            Some(&left),
            &carried(&[("x-b3-traceid", other), ("x-b3-spanid", S)]),
            true,
            true,
        );
        assert_eq!(e, Evidence::Tracer(TracerKind::Zipkin { reads_w3c: false }));
        let e = evidence(
            Some(&left),
            &carried(&[("traceparent", &format!("00-{other}-{S}-01"))]),
            true,
            true,
        );
        assert_eq!(e, Evidence::Tracer(TracerKind::OpenTelemetry));
        // The filter left nothing (undecided, traced request): whatever is there, a tracer wrote.
        let e = evidence(
            None,
            &carried(&[("traceparent", &format!("00-{other}-{S}-01"))]),
            true,
            true,
        );
        assert_eq!(e, Evidence::Tracer(TracerKind::OpenTelemetry));
        assert_eq!(
            evidence(None, &carried(&[]), true, true),
            Evidence::NoTracer
        );
        let e = evidence(
            Some(&left),
            &carried(&[
                ("x-b3-traceid", other),
                ("x-b3-spanid", S),
                ("traceparent", &format!("00-{other}-{S}-01")),
            ]),
            true,
            true,
        );
        assert_eq!(e, Evidence::Tracer(TracerKind::Zipkin { reads_w3c: true }));
    }

    #[test]
    fn intact_ids_prove_no_tracer_only_where_one_would_have_written() {
        let left = ctx(T32, S);
        let left = Some(&left);
        let intact = carried(&[("x-b3-traceid", T32), ("x-b3-spanid", S)]);
        assert_eq!(evidence(left, &intact, true, true), Evidence::NoTracer);
        assert_eq!(evidence(left, &intact, false, true), Evidence::Nothing);
        assert_eq!(
            evidence(left, &intact, true, false),
            Evidence::Nothing,
            "local reply"
        );
        assert_eq!(evidence(left, &carried(&[]), true, true), Evidence::Nothing);
        // A sampling-only header or garbage is no context: no evidence either way.
        assert_eq!(
            evidence(
                left,
                &carried(&[("b3", "1"), ("traceparent", "junk")]),
                true,
                true
            ),
            Evidence::Nothing
        );
    }

    #[test]
    fn learns_once_and_only_while_undecided() {
        let zipkin = TracerKind::Zipkin { reads_w3c: false };
        let hop = Hop::new(Tracer::Auto { zipkin });
        assert_eq!(hop.learn(Evidence::Nothing), None);
        assert_eq!(hop.learn(Evidence::Tracer(zipkin)), Some(zipkin));
        assert_eq!(hop.learn(Evidence::Tracer(zipkin)), None, "once");
        assert_eq!(hop.learn(Evidence::NoTracer), None);
        assert_eq!(hop.mode(false), Mode::Tracer(zipkin));
        let hop = Hop::new(Tracer::Auto { zipkin });
        hop.learn(Evidence::NoTracer);
        assert_eq!(hop.mode(true), Mode::Plain { own_span: true });
        assert_eq!(hop.learn(Evidence::Tracer(zipkin)), None, "settled");
        let hop = Hop::new(Tracer::None);
        assert_eq!(
            hop.learn(Evidence::Tracer(zipkin)),
            None,
            "configured, not learnt"
        );
    }
}
