//! What runs on this hop besides the filter — Envoy's tracer, and which one, or none — as far as
//! the proxy knows it.
//!
//! Nothing a filter can read in the request phase says it (measured: docs/tracers.md, "How it works with
//! Envoy's tracer"), so it is learnt from requests as they complete, and until then the filter
//! writes nothing that a tracer could contradict (`decision`, learning plan). What one worker
//! learns goes into proxy-wasm shared data, so one completed request teaches every worker of the
//! Envoy, and survives a configuration update. Known hops are checked again on a sample of
//! requests, so a tracer added to or removed from a running proxy is noticed.
//!
//! Evidence of a tracer: a request reached `on_log` carrying, in some format, a valid context at
//! another position than the filter forwarded there — only a tracer's router writes one after the
//! filter; which formats changed tells Zipkin from OpenTelemetry. Evidence of none: a request for
//! which every tracer would have made a span went upstream with exactly what the filter forwarded.

use std::cell::Cell;

use crate::context::{Format, FormatSet, TraceContext};
use crate::host::Host;
use crate::propagator::Extracted;
use crate::tracer::TracerKind;

/// What runs on this hop besides the filter: the one vocabulary from settings to decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// Not known yet: no request has shown it.
    Unknown,
    /// No Envoy tracer: the filter's context is the one that flows.
    Plain,
    /// Envoy's tracer runs here and owns the ids where it makes a span.
    Tracer(TracerKind),
}

impl Hop {
    /// For logs: what the hop is.
    pub fn describe(self) -> &'static str {
        match self {
            Hop::Unknown => "not known yet",
            Hop::Plain => "no tracer",
            Hop::Tracer(kind) => kind.name(),
        }
    }

    /// The plugin configuration that says this hop (for warnings).
    pub fn setting(self) -> &'static str {
        match self {
            Hop::Unknown => "\"tracer\": \"auto\"",
            Hop::Plain => "\"tracer\": \"none\"",
            Hop::Tracer(kind) => kind.setting(),
        }
    }

    /// The shared-data value (versioned: another build of the module may read it).
    fn encode(self) -> &'static [u8] {
        match self {
            Hop::Unknown => b"1:unknown",
            Hop::Plain => b"1:none",
            Hop::Tracer(TracerKind::Zipkin { reads_w3c: false }) => b"1:zipkin",
            Hop::Tracer(TracerKind::Zipkin { reads_w3c: true }) => b"1:zipkin-w3c",
            Hop::Tracer(TracerKind::OpenTelemetry) => b"1:opentelemetry",
            Hop::Tracer(TracerKind::Datadog) => b"1:datadog",
        }
    }

    fn decode(b: &[u8]) -> Option<Hop> {
        [
            Hop::Plain,
            Hop::Tracer(TracerKind::Zipkin { reads_w3c: false }),
            Hop::Tracer(TracerKind::Zipkin { reads_w3c: true }),
            Hop::Tracer(TracerKind::OpenTelemetry),
            Hop::Tracer(TracerKind::Datadog),
        ]
        .into_iter()
        .find(|h| h.encode() == b)
    }
}

/// What one completed request says about the hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    Tracer(TracerKind),
    NoTracer,
    Nothing,
}

/// Compares what the filter forwarded in each format (`forwarded`, in `Format::ALL` order: the
/// context it wrote or kept, `None` where it left nothing) with what the request carried at the
/// end (`datadog_written`: with a Datadog context the request did not come with).
/// `every_tracer_writes`: each tracer this hop may run would have made a span (and written its
/// ids) for the incoming headers; `went_upstream`: the request reached an upstream.
pub fn evidence(
    forwarded: &[Option<TraceContext>; 3],
    carried: &[Extracted; 3],
    datadog_written: bool,
    every_tracer_writes: bool,
    went_upstream: bool,
) -> Evidence {
    let mut replaced = FormatSet::EMPTY;
    let mut intact = true;
    for f in Format::ALL {
        let left = forwarded.get(f.index()).copied().flatten();
        let now = carried.get(f.index()).and_then(Extracted::context);
        match (left, now) {
            (Some(l), Some(c)) if c.same_position(&l) => {}
            (_, Some(_)) => replaced = replaced.with(f),
            (Some(_), None) => intact = false,
            (None, None) => {}
        }
    }
    if !replaced.is_empty() {
        return TracerKind::from_replaced(replaced, datadog_written)
            .map_or(Evidence::Nothing, Evidence::Tracer);
    }
    if intact && every_tracer_writes && went_upstream {
        Evidence::NoTracer
    } else {
        Evidence::Nothing
    }
}

/// A known hop is checked again on one request in this many (and every request while unknown).
pub const CHECK_EVERY: u32 = 32;

/// A change of what this worker knows, for the plugin to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub from: Hop,
    pub to: Hop,
}

/// The hop as this worker knows it, kept in step with the other workers through shared data.
pub struct HopKnowledge {
    state: Cell<Hop>,
    /// The shared-data version last adopted or written.
    version: Cell<u32>,
    key: String,
    requests: Cell<u32>,
}

impl HopKnowledge {
    /// `start`: the hop before any evidence (`Unknown`, or `Plain` where the configuration says
    /// `"tracer": "none"`); `key`: the shared-data key of this plugin.
    pub fn new(start: Hop, key: String) -> HopKnowledge {
        HopKnowledge {
            state: Cell::new(start),
            version: Cell::new(0),
            key,
            requests: Cell::new(0),
        }
    }

    pub fn get(&self) -> Hop {
        self.state.get()
    }

    /// The hop for a request: while unknown, first asks whether another worker learnt it (one
    /// host call per request, only until it is known).
    pub fn for_request(&self, host: &impl Host) -> Hop {
        if self.state.get() == Hop::Unknown {
            self.adopt_shared(host);
        }
        self.state.get()
    }

    /// Takes what another worker learnt since this one last looked (on configure, on the tick,
    /// and per request while unknown). Returns the change, if any.
    pub fn adopt_shared(&self, host: &impl Host) -> Option<Change> {
        let (value, version) = host.shared_data(&self.key)?;
        if version == self.version.get() {
            return None;
        }
        self.version.set(version);
        let to = Hop::decode(&value)?;
        self.set(to)
    }

    /// Whether the request now starting is one whose completion is checked.
    pub fn checks_next(&self) -> bool {
        if self.state.get() == Hop::Unknown {
            return true;
        }
        let n = self.requests.get().wrapping_add(1);
        self.requests.set(n);
        n.is_multiple_of(CHECK_EVERY)
    }

    /// Applies one request's evidence; a change is shared with the other workers and returned
    /// (`None` where another worker shared it first: it is said once).
    pub fn learn(&self, host: &impl Host, e: Evidence) -> Option<Change> {
        let to = match e {
            Evidence::Tracer(kind) => Hop::Tracer(kind),
            Evidence::NoTracer => Hop::Plain,
            Evidence::Nothing => return None,
        };
        if self.state.get() != to {
            self.adopt_shared(host);
        }
        let change = self.set(to)?;
        if host.set_shared_data(&self.key, to.encode()) {
            if let Some((_, version)) = host.shared_data(&self.key) {
                self.version.set(version);
            }
        }
        Some(change)
    }

    fn set(&self, to: Hop) -> Option<Change> {
        let from = self.state.replace(to);
        (from != to).then_some(Change { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ctx, S, T32};
    use crate::formats::extract_all;
    use crate::host::fake::FakeHost;

    fn carried(pairs: &[(&str, &str)]) -> [Extracted; 3] {
        extract_all(&crate::fixtures::headers(pairs))
    }

    /// The filter's context forwarded as B3 multi and W3C (the default outputs).
    fn both(c: TraceContext) -> [Option<TraceContext>; 3] {
        [None, Some(c), Some(c)]
    }

    const OTHER: &str = "00000000000000000000000000000abc";

    #[test]
    fn replaced_ids_reveal_the_tracer_and_which_option() {
        let left = both(ctx(T32, S));
        let b3 = [("x-b3-traceid", OTHER), ("x-b3-spanid", S)];
        let tp = format!("00-{OTHER}-{S}-01");
        let e = evidence(&left, &carried(&b3), false, true, true);
        assert_eq!(e, Evidence::Tracer(TracerKind::Zipkin { reads_w3c: false }));
        let e = evidence(&left, &carried(&[("traceparent", &tp)]), false, true, true);
        assert_eq!(e, Evidence::Tracer(TracerKind::OpenTelemetry));
        let mut all = b3.to_vec();
        all.push(("traceparent", &tp));
        let e = evidence(&left, &carried(&all), false, true, true);
        assert_eq!(e, Evidence::Tracer(TracerKind::Zipkin { reads_w3c: true }));
        // traceparent replaced and a Datadog context written beside it: Datadog.
        let e = evidence(&left, &carried(&[("traceparent", &tp)]), true, true, true);
        assert_eq!(e, Evidence::Tracer(TracerKind::Datadog));
        // The filter forwarded nothing (learning, no incoming context): whatever is there, a
        // tracer wrote; nothing there proves no tracer.
        let none = [None; 3];
        let e = evidence(&none, &carried(&[("traceparent", &tp)]), false, true, true);
        assert_eq!(e, Evidence::Tracer(TracerKind::OpenTelemetry));
        assert_eq!(
            evidence(&none, &carried(&[]), false, true, true),
            Evidence::NoTracer
        );
    }

    #[test]
    fn intact_ids_prove_no_tracer_only_where_every_tracer_would_have_written() {
        let left = both(ctx(T32, S));
        let tp = format!("00-{T32}-{S}-01");
        let intact = carried(&[
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
            ("traceparent", &tp),
        ]);
        assert_eq!(
            evidence(&left, &intact, false, true, true),
            Evidence::NoTracer
        );
        assert_eq!(
            evidence(&left, &intact, false, false, true),
            Evidence::Nothing
        );
        assert_eq!(
            evidence(&left, &intact, false, true, false),
            Evidence::Nothing,
            "local reply"
        );
        assert_eq!(
            evidence(&left, &carried(&[]), false, true, true),
            Evidence::Nothing,
            "something removed what the filter forwarded"
        );
        // A sampling-only header or garbage is no context: no evidence either way.
        let junk = carried(&[("b3", "1"), ("traceparent", "junk")]);
        assert_eq!(evidence(&left, &junk, false, true, true), Evidence::Nothing);
    }

    #[test]
    fn one_worker_learns_for_all_and_changes_are_followed() {
        let zipkin = Hop::Tracer(TracerKind::Zipkin { reads_w3c: false });
        let w1 = FakeHost::new();
        let w2 = w1.another_worker();
        let k1 = HopKnowledge::new(Hop::Unknown, "k".into());
        let k2 = HopKnowledge::new(Hop::Unknown, "k".into());
        assert_eq!(k2.for_request(&w2), Hop::Unknown);
        assert_eq!(k1.learn(&w1, Evidence::Nothing), None);
        let change = k1.learn(&w1, Evidence::NoTracer);
        assert_eq!(
            change,
            Some(Change {
                from: Hop::Unknown,
                to: Hop::Plain
            })
        );
        assert_eq!(k1.learn(&w1, Evidence::NoTracer), None, "once");
        assert_eq!(k2.for_request(&w2), Hop::Plain, "the other worker knows");
        // A known hop asks no more per request.
        w2.reset_call_counts();
        k2.for_request(&w2);
        assert_eq!(w2.calls_of("shared_data"), 0);
        // A tracer appears (a new Telemetry resource): the worker that sees it shares it, the
        // other takes it on its tick.
        assert!(k2
            .learn(
                &w2,
                Evidence::Tracer(TracerKind::Zipkin { reads_w3c: false })
            )
            .is_some());
        assert_eq!(k1.get(), Hop::Plain);
        assert_eq!(
            k1.adopt_shared(&w1),
            Some(Change {
                from: Hop::Plain,
                to: zipkin
            })
        );
        assert_eq!(k1.adopt_shared(&w1), None, "nothing new");
        // Its own writes are not taken back as news.
        assert!(k1.learn(&w1, Evidence::NoTracer).is_some());
        assert_eq!(k1.adopt_shared(&w1), None);
    }

    #[test]
    fn known_hops_are_checked_on_a_sample_unknown_ones_always() {
        let k = HopKnowledge::new(Hop::Unknown, "k".into());
        assert!((0..10).all(|_| k.checks_next()));
        let k = HopKnowledge::new(Hop::Plain, "k".into());
        let checked = (0..CHECK_EVERY * 4).filter(|_| k.checks_next()).count();
        assert_eq!(checked, 4);
    }

    #[test]
    fn shared_values_round_trip_and_junk_is_ignored() {
        for h in [
            Hop::Plain,
            Hop::Tracer(TracerKind::OpenTelemetry),
            Hop::Tracer(TracerKind::Zipkin { reads_w3c: true }),
        ] {
            assert_eq!(Hop::decode(h.encode()), Some(h));
        }
        assert_eq!(Hop::decode(b"1:unknown"), None);
        assert_eq!(Hop::decode(b"zipkin"), None);
        let w = FakeHost::new();
        w.set_shared_data("k", b"garbage");
        let k = HopKnowledge::new(Hop::Unknown, "k".into());
        assert_eq!(k.for_request(&w), Hop::Unknown);
    }
}
