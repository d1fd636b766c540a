//! The per-request decision, in three steps: read what came in (every format through its
//! propagator), resolve one context (sampling decided here), and plan the header edits for the
//! kind of hop this is. Pure: headers in, edits out.

use crate::context::{Format, FormatSet, Parsed, Sampling, TraceContext};
use crate::headers::{Edit, TraceHeaders};
use crate::ids::{IdSource, TraceId};
use crate::propagator::{self, Extracted};
use crate::settings::Settings;
use crate::tracer::{Outcome, Prediction, TracerKind};
use crate::w3c::{self, TraceparentFate};

/// What runs on this hop besides the filter, as far as the filter knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No Envoy tracer: the filter's context is the one that flows. With `own_span` the filter
    /// reports a span of its own (export) and takes part in the trace.
    Plain { own_span: bool },
    /// `tracer: auto`, not known yet: planned as `Plain`; but where Envoy marked the request id
    /// as traced, a tracer (Zipkin, as `zipkin` is configured, or OpenTelemetry: each rewrites
    /// only its own formats) probably runs, so the filter removes every trace header and writes
    /// none, tells nothing, and lets whichever tracer runs write the one context.
    Undecided { own_span: bool, zipkin: TracerKind },
    /// Envoy's tracer runs here: where it makes a span it owns the ids; the filter writes none
    /// and removes what would contradict them.
    Tracer(TracerKind),
}

/// How the request's context arrived (the `context` field of the log line, and the counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    B3Multi,
    B3Single,
    W3c,
    /// Nothing usable came in (no trace headers, or only a sampling decision): a new trace.
    Injected,
    /// Something came in but none of it was valid: a new trace replaced it.
    Repaired,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::B3Multi,
        Source::B3Single,
        Source::W3c,
        Source::Injected,
        Source::Repaired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::B3Multi => "b3",
            Source::B3Single => "b3-single",
            Source::W3c => "w3c",
            Source::Injected => "injected",
            Source::Repaired => "repaired",
        }
    }

    /// The counter suffix (`trace_inject.requests.<suffix>`).
    pub fn counter(self) -> &'static str {
        match self {
            Source::B3Single => "b3_single",
            other => other.name(),
        }
    }

    fn of(f: Format) -> Source {
        match f {
            Format::B3Multi => Source::B3Multi,
            Format::B3Single => Source::B3Single,
            Format::W3c => Source::W3c,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The context the filter resolved (beside a tracer that makes a span, the tracer's ids
    /// replace it upstream).
    pub context: TraceContext,
    /// The context the filter leaves in the request's headers, if any (what `on_log` compares
    /// with what the request carried at the end, to learn whether a tracer ran).
    pub left: Option<TraceContext>,
    pub source: Source,
    pub edits: Vec<Edit>,
    /// Malformed input that was replaced or removed: (header, reason), for the debug log.
    pub malformed: Vec<(&'static str, &'static str)>,
    /// Valid formats disagreed; the one first in `precedence` won.
    pub conflict: bool,
    /// The caller's context was not trusted (`trust_incoming`): a new trace was started; the
    /// caller's trace id, when it sent a valid one, is kept for correlation.
    pub restarted: bool,
    pub caller_trace_id: Option<TraceId>,
    /// The context that went on was read leniently (upper-case B3 ids, `true`/`false`, an
    /// ignored `x-b3-flags`) and is written back in canonical form.
    pub normalised: bool,
    /// The trace id the caller may be told: the trace this request's spans end up in (or, where
    /// no span is made on this hop, the one the next hop joins). `None` when it cannot be known
    /// before the response (Envoy's tracer starts a new trace).
    pub report: Option<TraceId>,
}

/// Step 1: every format's view of the request; the formats in `precedence` are the input.
struct Incoming {
    states: [Extracted; 3],
    /// The context that is continued: the first valid in `precedence`, if the caller is trusted.
    winner: Option<(Format, TraceContext)>,
    /// The format the first valid context came in, trusted or not.
    arrived: Option<Format>,
    caller_trace_id: Option<TraceId>,
    /// An untrusted caller sent a context or a sampling decision, and a new trace replaced it.
    restarted: bool,
    trusted: bool,
    malformed: Vec<(&'static str, &'static str)>,
    conflict: bool,
}

impl Incoming {
    fn read(h: &TraceHeaders, s: &Settings, trusted: bool) -> Incoming {
        let states = propagator::extract_all(h);
        let found = propagator::first_context(&states, &s.precedence);
        // An untrusted caller's context (and sampling decision) is not continued.
        let winner = found.filter(|_| trusted);
        let mut malformed = Vec::new();
        let mut conflict = false;
        for &f in &s.precedence {
            match states.get(f.index()).map(|e| &e.parsed) {
                Some(Parsed::Malformed(why)) => malformed.push((propagator::of(f).label(), *why)),
                Some(Parsed::Context(c)) => {
                    conflict |= winner.is_some_and(|(_, w)| !w.same_position(c));
                }
                _ => {}
            }
        }
        let decision_sent = s.precedence.iter().any(|f| {
            matches!(
                states.get(f.index()).map(|e| &e.parsed),
                Some(Parsed::SamplingOnly(_) | Parsed::Context(_))
            )
        });
        Incoming {
            states,
            winner,
            arrived: found.map(|(f, _)| f),
            caller_trace_id: found.filter(|_| !trusted).map(|(_, c)| c.trace_id),
            restarted: !trusted && decision_sent,
            trusted,
            malformed,
            conflict,
        }
    }

    fn state(&self, f: Format) -> &Extracted {
        self.states.get(f.index()).unwrap_or(&Extracted::ABSENT)
    }

    fn normalised(&self) -> bool {
        self.winner.is_some_and(|(f, _)| self.state(f).lenient)
    }

    /// Step 2: the context that goes on, and how it came.
    fn resolve(&self, s: &Settings, ids: &mut impl IdSource) -> (TraceContext, Source) {
        match self.winner {
            // A deferred decision is the receiver's to make (B3 spec): this filter makes it, so
            // every format carries the same one, rather than W3C reading "not sampled" into it.
            // Where another format names the same position with a decision, that one is taken:
            // a `traceparent` never gets another sampled flag under its old parent-id.
            Some((f, c)) if c.sampling == Sampling::Defer => {
                let sibling = self.states.iter().find_map(|e| {
                    e.context()
                        .filter(|o| o.same_position(&c) && o.sampling != Sampling::Defer)
                        .map(|o| o.sampling)
                });
                (
                    TraceContext {
                        sampling: sibling.unwrap_or_else(|| sample(s, ids)),
                        ..c
                    },
                    Source::of(f),
                )
            }
            Some((f, c)) => (c, Source::of(f)),
            None => {
                let sent = s.precedence.iter().filter(|_| self.trusted).find_map(|f| {
                    match self.state(*f).parsed {
                        // (An ignored `x-b3-flags` alone is no decision.)
                        Parsed::SamplingOnly(d) if d != Sampling::Defer => Some(d),
                        _ => None,
                    }
                });
                let sampling = match sent {
                    Some(decision) => decision,
                    None if s.defer_new_traces => Sampling::Defer,
                    None => sample(s, ids),
                };
                let context = TraceContext {
                    trace_id: ids.trace_id(),
                    span_id: ids.span_id(),
                    parent_span_id: None,
                    sampling,
                    random: true,
                };
                // How it arrived, for the log and counters, also when it was not trusted.
                let source = match self.arrived {
                    Some(f) => Source::of(f),
                    None if self.malformed.is_empty() => Source::Injected,
                    None => Source::Repaired,
                };
                (context, source)
            }
        }
    }
}

/// Decides what the request carries upstream and what the caller is told. `trusted`: the
/// caller may choose the trace (`trust_incoming`, as the adapter judged this request).
pub fn decide(
    h: &TraceHeaders,
    s: &Settings,
    mode: Mode,
    trusted: bool,
    ids: &mut impl IdSource,
) -> Decision {
    let incoming = Incoming::read(h, s, trusted);
    let (mut context, source) = incoming.resolve(s, ids);
    let report = match mode {
        Mode::Tracer(kind) => {
            let prediction = kind.predict(h);
            if prediction.outcome != Outcome::NoSpan {
                return beside_tracer(prediction, incoming, context, source, h);
            }
            // No span, nothing injected: the filter's (repaired) context is what flows.
            Some(context.trace_id)
        }
        Mode::Undecided { .. } if h.tracer_hint() => {
            return any_tracer(incoming, context, source, h);
        }
        Mode::Plain { own_span } | Mode::Undecided { own_span, .. } => {
            if own_span && incoming.winner.is_some() {
                // The filter's own span, a child of the caller's: the upstream gets its id as the
                // parent (B3 `x-b3-parentspanid`; W3C "update parent-id"). A new trace's root is
                // the filter's span already.
                context.parent_span_id = Some(context.span_id);
                context.span_id = ids.span_id();
            }
            Some(context.trace_id)
        }
    };
    let mut malformed = incoming.malformed.clone();
    let edits = plan_plain(&incoming, &context, h, s, &mut malformed);
    Decision {
        context,
        left: (!s.outputs.is_empty()).then_some(context),
        source,
        edits,
        malformed,
        conflict: incoming.conflict,
        normalised: incoming.normalised(),
        restarted: incoming.restarted,
        caller_trace_id: incoming.caller_trace_id,
        report,
    }
}

/// Step 3, where the filter's context flows: the upstream receives exactly one context, in every
/// output format. A format that agrees exactly is left as it came; an output that does not is
/// written; any other format present is removed (or, when it agrees but is not in canonical form,
/// normalised) — also one the filter does not read, so nothing of another trace goes on beside it.
fn plan_plain(
    incoming: &Incoming,
    ctx: &TraceContext,
    h: &TraceHeaders,
    s: &Settings,
    malformed: &mut Vec<(&'static str, &'static str)>,
) -> Vec<Edit> {
    let mut edits = Vec::new();
    for f in Format::ALL {
        let p = propagator::of(f);
        let state = incoming.state(f);
        let same = state.context().is_some_and(|c| p.agrees(ctx, c));
        if s.outputs.contains(f) && p.can_carry(ctx) {
            if !(same && state.exact) {
                p.inject(ctx, h, &mut edits);
            }
        } else if p.present(h) {
            // A bare sampling decision is dropped too: beside a context in another B3 form it
            // makes the next B3 reader (Envoy's Zipkin tracer reads `b3` alone) start a new trace.
            // With no outputs at all (an egress), nothing goes on.
            if s.outputs.is_empty() {
                p.remove(h, &mut edits);
            } else if same && !state.exact {
                p.inject(ctx, h, &mut edits);
            } else if !same {
                p.remove(h, &mut edits);
            }
        }
    }
    let fate = traceparent_fate(incoming.state(Format::W3c), ctx, &edits);
    if let Some((edit, why)) = w3c::tracestate_edit(h, fate) {
        if let Some(why) = why {
            malformed.push((crate::headers::TRACESTATE, why));
        }
        edits.push(edit);
    }
    edits
}

/// What the planned edits do to the incoming `traceparent`.
fn traceparent_fate(incoming: &Extracted, ctx: &TraceContext, edits: &[Edit]) -> TraceparentFate {
    let Some(tp) = incoming.context() else {
        return TraceparentFate::Replaced;
    };
    let edited = edits
        .iter()
        .rev()
        .find(|e| e.name == crate::headers::TRACEPARENT);
    match edited {
        None => TraceparentFate::Unchanged,
        Some(Edit { value: Some(_), .. }) if tp.trace_id.same_trace(&ctx.trace_id) => {
            TraceparentFate::Updated
        }
        Some(_) => TraceparentFate::Replaced,
    }
}

/// Step 3 beside a tracer that makes a span: its router writes the ids (after this filter ran),
/// so the filter writes none of its own; it removes every trace header (what the tracer does not
/// rewrite would be stale, or of another trace), and reports the trace id only when it knows it.
fn beside_tracer(
    prediction: Prediction,
    incoming: Incoming,
    context: TraceContext,
    source: Source,
    h: &TraceHeaders,
) -> Decision {
    // Every trace header goes: the router writes the tracer's context in its own formats after
    // the filter ran (setting what it writes), and which B3 form Zipkin writes back for an
    // incoming `b3` depends on the Envoy version (measured: `b3` on 1.40, `x-b3-*` on 1.36-1.39).
    let mut edits = Vec::new();
    for f in Format::ALL {
        propagator::of(f).remove(h, &mut edits);
    }
    let joined = prediction.outcome.trace_id();
    if !h.tracestate.is_empty() {
        // Kept only with the `traceparent` the tracer joins and writes on.
        let fate = match incoming.state(Format::W3c).context() {
            Some(tp)
                if prediction.writes.contains(Format::W3c) && joined == Some(tp.trace_id.value) =>
            {
                TraceparentFate::Updated
            }
            _ => TraceparentFate::Replaced,
        };
        if let Some((edit, _)) = w3c::tracestate_edit(h, fate) {
            edits.push(edit);
        }
    }
    Decision {
        context,
        left: None,
        source,
        edits,
        normalised: incoming.normalised(),
        restarted: false,
        caller_trace_id: None,
        malformed: incoming.malformed,
        conflict: incoming.conflict,
        report: joined.map(TraceId::new_128),
    }
}

/// `auto`, undecided, and Envoy marked the request traced: every trace header goes, none is
/// written, so whichever tracer runs writes the only context (and where none runs, this one
/// request carries none; it also proves there is no tracer). Nothing is told: no id holds on
/// every kind of hop.
fn any_tracer(
    incoming: Incoming,
    context: TraceContext,
    source: Source,
    h: &TraceHeaders,
) -> Decision {
    // As beside a tracer that starts a trace nobody knows yet and writes nothing the filter could
    // keep: every header goes (tracestate too), nothing is told.
    let unknown = Prediction {
        outcome: Outcome::NewRoot,
        writes: FormatSet::EMPTY,
    };
    beside_tracer(unknown, incoming, context, source, h)
}

fn sample(s: &Settings, ids: &mut impl IdSource) -> Sampling {
    let hit = match s.sampling_per_million {
        0 => false,
        p if p >= 1_000_000 => true,
        p => ids.next_u64() % 1_000_000 < u64::from(p),
    };
    if hit {
        Sampling::Accept
    } else {
        Sampling::Deny
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::context::Format::*;
    use crate::ids::SpanId;
    use crate::test_fixtures::{Counter, S, T32, TRACEPARENT as TP};

    fn decide_in(headers: &[(&str, &str)], cfg: &Config, mode: Mode) -> Decision {
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let settings = Settings::from(cfg.clone());
        decide(
            &TraceHeaders::collect(pairs),
            &settings,
            mode,
            true,
            &mut Counter(0),
        )
    }

    fn untrusted(headers: &[(&str, &str)], cfg: &Config) -> Decision {
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let settings = Settings::from(cfg.clone());
        let h = TraceHeaders::collect(pairs);
        decide(
            &h,
            &settings,
            Mode::Plain { own_span: false },
            false,
            &mut Counter(0),
        )
    }

    /// An ignored `x-b3-flags` alone (not `1`) is no sampling decision: the new trace is sampled
    /// as configured, not left deferred.
    #[test]
    fn an_ignored_flag_alone_is_no_decision() {
        for percent in [0.0, 100.0] {
            let cfg = Config {
                sampling_percent: percent,
                ..Config::default()
            };
            let d = decide_in(
                &[("x-b3-flags", "2")],
                &cfg,
                Mode::Plain { own_span: false },
            );
            let want = if percent > 0.0 {
                Sampling::Accept
            } else {
                Sampling::Deny
            };
            assert_eq!(d.context.sampling, want, "sampling_percent {percent}");
            assert_eq!(d.source, Source::Injected);
        }
    }

    #[test]
    fn an_untrusted_caller_never_chooses_the_trace_nor_the_sampling() {
        let cfg = Config {
            sampling_percent: 0.0,
            ..Config::default()
        };
        for headers in [
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("x-b3-flags", "1"),
            ][..],
            &[("b3", &*format!("{T32}-{S}-d"))],
            &[
                ("traceparent", &*format!("00-{T32}-{S}-01")),
                ("tracestate", "a=1"),
            ],
            &[("b3", "1")],
        ] {
            let d = untrusted(headers, &cfg);
            assert!(d.restarted, "{headers:?}");
            assert_ne!(d.context.trace_id.to_hex32(), T32);
            assert_eq!(
                d.context.sampling,
                Sampling::Deny,
                "sampling_percent decides"
            );
            assert_eq!(d.report, Some(d.context.trace_id));
            assert_eq!(
                set(&d, "x-b3-flags"),
                headers
                    .iter()
                    .any(|(n, _)| *n == "x-b3-flags")
                    .then_some(None)
            );
            if headers.iter().any(|(n, _)| *n == "tracestate") {
                assert_eq!(
                    set(&d, "tracestate"),
                    Some(None),
                    "not carried into a new trace"
                );
            }
        }
        let d = untrusted(&[("x-b3-traceid", T32), ("x-b3-spanid", S)], &cfg);
        assert_eq!(
            d.caller_trace_id.map(|t| t.to_hex32()).as_deref(),
            Some(T32)
        );
        assert_eq!(d.source, Source::B3Multi, "how it arrived");
        let d = untrusted(&[], &cfg);
        assert!(!d.restarted && d.caller_trace_id.is_none());
    }

    #[test]
    fn deferred_new_traces_carry_no_decision() {
        let cfg = Config {
            new_trace_sampling: crate::config::NewTraceSampling::Defer,
            outputs: vec![B3Multi, B3Single, W3c],
            ..Config::default()
        };
        let d = run(&[], &cfg);
        assert_eq!(d.context.sampling, Sampling::Defer);
        assert_eq!(set(&d, "x-b3-sampled"), None);
        assert_eq!(set(&d, "b3").unwrap().unwrap().split('-').count(), 2);
        assert_eq!(
            set(&d, "traceparent"),
            None,
            "W3C cannot defer: none written"
        );
        let d = run(&[("traceparent", "junk")], &cfg);
        assert_eq!(set(&d, "traceparent"), Some(None));
        // An incoming decision is still the caller's.
        assert_eq!(run(&[("b3", "1")], &cfg).context.sampling, Sampling::Accept);
    }

    #[test]
    fn no_outputs_means_no_trace_header_leaves() {
        let cfg = Config {
            outputs: vec![],
            ..Config::default()
        };
        let d = run(
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "1"),
                ("b3", &format!("{T32}-{S}-1")),
                ("traceparent", &format!("00-{T32}-{S}-01")),
                ("tracestate", "a=1"),
            ],
            &cfg,
        );
        for name in [
            "x-b3-traceid",
            "x-b3-spanid",
            "x-b3-sampled",
            "b3",
            "traceparent",
            "tracestate",
        ] {
            assert_eq!(set(&d, name), Some(None), "{name}");
        }
        assert!(d.edits.iter().all(|e| e.value.is_none()));
        assert_eq!(d.report.map(|t| t.to_hex32()).as_deref(), Some(T32));
    }

    fn run(headers: &[(&str, &str)], cfg: &Config) -> Decision {
        decide_in(headers, cfg, Mode::Plain { own_span: false })
    }

    fn set(d: &Decision, name: &str) -> Option<Option<String>> {
        d.edits
            .iter()
            .rev()
            .find(|e| e.name == name)
            .map(|e| e.value.clone())
    }

    #[test]
    fn no_headers_starts_a_sampled_128_bit_trace_in_b3_and_w3c() {
        let d = run(&[], &Config::default());
        assert_eq!(d.source, Source::Injected);
        assert!(d.malformed.is_empty());
        let t = "00000000000000010000000000000002";
        assert_eq!(set(&d, "x-b3-traceid"), Some(Some(t.into())));
        assert_eq!(
            set(&d, "x-b3-spanid"),
            Some(Some("0000000000000003".into()))
        );
        assert_eq!(set(&d, "x-b3-sampled"), Some(Some("1".into())));
        // Absent headers are not removed (a host call saved).
        assert_eq!(set(&d, "x-b3-parentspanid"), None);
        assert_eq!(set(&d, "x-b3-flags"), None);
        // W3C Level 2: the filter's ids are random, and its traceparent says so.
        assert_eq!(
            set(&d, "traceparent"),
            Some(Some(format!("00-{t}-0000000000000003-03")))
        );
        assert_eq!(set(&d, "b3"), None, "b3 single is not a default output");
    }

    #[test]
    fn sampling_config_applies_to_new_traces() {
        let cfg = Config {
            sampling_percent: 0.0,
            ..Config::default()
        };
        let d = run(&[], &cfg);
        assert_eq!(d.context.sampling, Sampling::Deny);
        assert_eq!(set(&d, "x-b3-sampled"), Some(Some("0".into())));
        assert!(set(&d, "traceparent").unwrap().unwrap().ends_with("-02"));
    }

    #[test]
    fn valid_b3_multi_is_propagated_unchanged_and_w3c_filled_in() {
        let d = run(
            &[
                ("x-b3-traceid", "48485a3953bb6124"),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "1"),
            ],
            &Config::default(),
        );
        assert_eq!(d.source, Source::B3Multi);
        assert_eq!(set(&d, "x-b3-traceid"), None, "B3 untouched");
        assert_eq!(set(&d, "x-b3-spanid"), None);
        // 64-bit trace id left-padded; parent-id is the caller's span id.
        assert_eq!(
            set(&d, "traceparent"),
            Some(Some(format!("00-000000000000000048485a3953bb6124-{S}-01")))
        );
    }

    #[test]
    fn valid_b3_single_fills_multi_and_w3c() {
        let d = run(
            &[("b3", &format!("{T32}-{S}-d-0020000000000001"))],
            &Config::default(),
        );
        assert_eq!(d.source, Source::B3Single);
        assert_eq!(set(&d, "x-b3-traceid"), Some(Some(T32.into())));
        assert_eq!(set(&d, "x-b3-spanid"), Some(Some(S.into())));
        assert_eq!(
            set(&d, "x-b3-parentspanid"),
            Some(Some("0020000000000001".into()))
        );
        assert_eq!(set(&d, "x-b3-flags"), Some(Some("1".into())));
        assert_eq!(
            set(&d, "x-b3-sampled"),
            None,
            "debug: no x-b3-sampled, none to remove"
        );
        assert_eq!(
            set(&d, "traceparent"),
            Some(Some(format!("00-{T32}-{S}-01")))
        );
        assert_eq!(set(&d, "b3"), None, "the incoming b3 agrees: left as it is");
    }

    #[test]
    fn valid_traceparent_kept_with_its_tracestate() {
        let d = run(
            &[("traceparent", TP), ("tracestate", "congo=t61rcWkgMzE")],
            &Config::default(),
        );
        assert_eq!(d.source, Source::W3c);
        assert_eq!(set(&d, "traceparent"), None);
        assert_eq!(set(&d, "tracestate"), None);
        assert_eq!(
            set(&d, "x-b3-traceid"),
            Some(Some("4bf92f3577b34da6a3ce929d0e0e4736".into()))
        );
        assert_eq!(
            set(&d, "x-b3-spanid"),
            Some(Some("00f067aa0ba902b7".into()))
        );
        assert_eq!(set(&d, "x-b3-sampled"), Some(Some("1".into())));
    }

    #[test]
    fn a_deferred_decision_is_made_here_and_written_everywhere() {
        let d = run(
            &[("x-b3-traceid", T32), ("x-b3-spanid", S)],
            &Config::default(),
        );
        assert_eq!(d.context.sampling, Sampling::Accept);
        assert_eq!(
            set(&d, "x-b3-traceid"),
            Some(Some(T32.into())),
            "ids unchanged"
        );
        assert_eq!(set(&d, "x-b3-spanid"), Some(Some(S.into())));
        assert_eq!(set(&d, "x-b3-sampled"), Some(Some("1".into())));
        assert_eq!(
            set(&d, "traceparent"),
            Some(Some(format!("00-{T32}-{S}-01")))
        );
        let never = Config {
            sampling_percent: 0.0,
            ..Config::default()
        };
        let d = run(&[("b3", &format!("{T32}-{S}"))], &never);
        assert_eq!(d.context.sampling, Sampling::Deny);
        assert_eq!(set(&d, "x-b3-sampled"), Some(Some("0".into())));
    }

    #[test]
    fn malformed_everything_is_replaced_and_reported() {
        let d = run(
            &[
                ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb612"),
                ("x-b3-spanid", S),
                ("b3", "garbage"),
                (
                    "traceparent",
                    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                ("tracestate", "congo=t61rcWkgMzE"),
            ],
            &Config::default(),
        );
        assert_eq!(d.source, Source::Repaired);
        assert_eq!(d.malformed.len(), 3, "{:?}", d.malformed);
        let t = set(&d, "x-b3-traceid").unwrap().unwrap();
        assert_ne!(t, "463ac35c9f6413ad48485a3953bb612");
        assert!(set(&d, "traceparent").unwrap().unwrap().contains(&t));
        assert_eq!(
            set(&d, "b3"),
            Some(None),
            "malformed b3 removed (not an output)"
        );
        assert_eq!(
            set(&d, "tracestate"),
            Some(None),
            "tracestate of a bad traceparent dropped"
        );
    }

    #[test]
    fn a_valid_format_survives_a_malformed_one() {
        let d = run(
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "1"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                ),
            ],
            &Config::default(),
        );
        assert_eq!(d.source, Source::B3Multi);
        assert_eq!(d.malformed.len(), 1);
        assert_eq!(set(&d, "x-b3-traceid"), None);
        assert_eq!(
            set(&d, "traceparent"),
            Some(Some(format!("00-{T32}-{S}-01")))
        );
    }

    #[test]
    fn conflicts_resolved_by_precedence() {
        let headers = [
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
            ("x-b3-sampled", "1"),
            ("traceparent", TP),
        ];
        let d = run(&headers, &Config::default());
        assert!(d.conflict);
        assert_eq!(d.source, Source::B3Multi);
        assert_eq!(
            set(&d, "traceparent"),
            Some(Some(format!("00-{T32}-{S}-01")))
        );
        assert_eq!(set(&d, "x-b3-traceid"), None);

        let w3c_first = Config {
            precedence: vec![W3c, B3Single, B3Multi],
            ..Config::default()
        };
        let d = run(&headers, &w3c_first);
        assert_eq!(d.source, Source::W3c);
        assert_eq!(set(&d, "traceparent"), None);
        assert_eq!(
            set(&d, "x-b3-traceid"),
            Some(Some("4bf92f3577b34da6a3ce929d0e0e4736".into()))
        );
    }

    #[test]
    fn b3_single_wins_over_multi_by_default() {
        let d = run(
            &[
                ("b3", &format!("{T32}-{S}-1")),
                ("x-b3-traceid", "48485a3953bb6124"),
                ("x-b3-spanid", "0000000000000abc"),
            ],
            &Config::default(),
        );
        assert_eq!(d.source, Source::B3Single);
        assert!(d.conflict);
        assert_eq!(set(&d, "x-b3-traceid"), Some(Some(T32.into())));
    }

    #[test]
    fn agreeing_formats_are_left_alone() {
        let d = run(
            &[
                ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
                ("x-b3-spanid", "00f067aa0ba902b7"),
                ("x-b3-sampled", "1"),
                ("traceparent", TP),
            ],
            &Config::default(),
        );
        assert!(!d.conflict);
        assert!(d.edits.is_empty(), "{:?}", d.edits);
    }

    #[test]
    fn sampling_only_headers_decide_the_new_trace() {
        for (h, v, want) in [
            ("b3", "0", Sampling::Deny),
            ("b3", "d", Sampling::Debug),
            ("x-b3-sampled", "0", Sampling::Deny),
            ("x-b3-flags", "1", Sampling::Debug),
        ] {
            let d = run(&[(h, v)], &Config::default());
            assert_eq!(d.source, Source::Injected, "{h}: {v}");
            assert_eq!(d.context.sampling, want, "{h}: {v}");
        }
        // The bare decision is not an output: it goes, so the next B3 reader (Envoy's Zipkin
        // tracer reads `b3` alone) joins the context written in `x-b3-*`.
        let d = run(&[("b3", "1")], &Config::default());
        assert_eq!(set(&d, "b3"), Some(None));
        assert_eq!(set(&d, "x-b3-sampled"), Some(Some("1".into())));
    }

    #[test]
    fn higher_traceparent_version_is_downgraded() {
        let d = run(
            &[(
                "traceparent",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
            )],
            &Config::default(),
        );
        assert_eq!(d.source, Source::W3c);
        assert_eq!(set(&d, "traceparent"), Some(Some(TP.into())));
    }

    #[test]
    fn repeated_headers() {
        let d = run(
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("x-b3-traceid", "48485a3953bb6124"),
            ],
            &Config::default(),
        );
        assert_eq!(d.source, Source::B3Multi);
        assert_eq!(d.context.trace_id.to_b3(), T32, "first value wins");
        assert_eq!(
            set(&d, "x-b3-traceid"),
            Some(Some(T32.into())),
            "rewritten once"
        );

        let d = run(
            &[("traceparent", TP), ("traceparent", TP)],
            &Config::default(),
        );
        assert_eq!(d.source, Source::Repaired);
        assert!(set(&d, "traceparent").unwrap().is_some());
    }

    #[test]
    fn tracestate_rules() {
        // traceparent unchanged: tracestate "MUST NOT be modified" (a key twice included), but
        // a list breaking the grammar is discarded (the official suite expects it gone).
        let d = run(
            &[("traceparent", TP), ("tracestate", "Bad Key=1")],
            &Config::default(),
        );
        assert_eq!(d.source, Source::W3c);
        assert_eq!(set(&d, "tracestate"), Some(None));
        assert_eq!(d.malformed.len(), 1);
        let d = run(
            &[
                ("traceparent", TP),
                ("tracestate", "a=1"),
                ("tracestate", "a=2"),
            ],
            &Config::default(),
        );
        assert_eq!(set(&d, "tracestate"), None);
        // traceparent updated (a future version downgraded): rebuilt, the first of a key kept;
        // discarded whole where a member breaks the grammar.
        let d = run(
            &[
                ("traceparent", &TP.replacen("00", "01", 1)),
                ("tracestate", "a=1,a=9"),
                ("tracestate", "a=2,b=3"),
            ],
            &Config::default(),
        );
        assert_eq!(set(&d, "tracestate"), Some(Some("a=1,b=3".into())));
        assert_eq!(d.malformed.len(), 1, "a key twice, noted");
        let d = run(
            &[
                ("traceparent", &TP.replacen("00", "01", 1)),
                ("tracestate", "a=1,Bad Key=x"),
            ],
            &Config::default(),
        );
        assert_eq!(set(&d, "tracestate"), Some(None));
        let d = run(
            &[
                ("traceparent", TP),
                ("tracestate", "a=1"),
                ("tracestate", "b=2"),
            ],
            &Config::default(),
        );
        assert_eq!(set(&d, "tracestate"), None);
        // Without a traceparent it belongs to nothing.
        let d = run(&[("tracestate", "a=1")], &Config::default());
        assert_eq!(set(&d, "tracestate"), Some(None));
        // When another format's trace wins, the old tracestate goes with the old traceparent.
        let d = run(
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("traceparent", TP),
                ("tracestate", "a=1"),
            ],
            &Config::default(),
        );
        assert_eq!(set(&d, "tracestate"), Some(None));
        // Same trace, other parent: tracestate stays (the W3C "update parent-id" mutation).
        let d = run(
            &[
                ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
                ("x-b3-spanid", S),
                ("traceparent", TP),
                ("tracestate", "a=1"),
            ],
            &Config::default(),
        );
        assert_eq!(set(&d, "tracestate"), None);
        assert!(set(&d, "traceparent").is_some());
    }

    #[test]
    fn outputs_and_precedence_subsets() {
        let cfg = Config {
            outputs: vec![B3Single],
            ..Config::default()
        };
        let d = run(&[], &cfg);
        assert_eq!(
            set(&d, "b3"),
            Some(Some(
                "00000000000000010000000000000002-0000000000000003-1".into()
            ))
        );
        assert_eq!(set(&d, "traceparent"), None);
        assert_eq!(set(&d, "x-b3-traceid"), None);
        // Unread formats are not trusted, and nothing but the chosen context goes on.
        let cfg = Config {
            precedence: vec![B3Multi],
            outputs: vec![B3Multi],
            ..Config::default()
        };
        let d = run(&[("traceparent", "junk")], &cfg);
        assert_eq!(d.source, Source::Injected);
        assert!(d.malformed.is_empty(), "not read: not input");
        assert_eq!(set(&d, "traceparent"), Some(None));
    }

    #[test]
    fn b3_read_as_the_ecosystem_reads_it_and_written_canonically() {
        let d = run(
            &[
                ("x-b3-traceid", "463AC35C9F6413AD48485A3953BB6124"),
                ("x-b3-spanid", "A2FB4A1D1A96D312"),
                ("x-b3-sampled", "true"),
                ("x-b3-flags", "0"),
            ],
            &Config::default(),
        );
        assert_eq!(d.source, Source::B3Multi);
        assert!(d.normalised && d.malformed.is_empty());
        assert_eq!(set(&d, "x-b3-traceid"), Some(Some(T32.into())));
        assert_eq!(set(&d, "x-b3-spanid"), Some(Some(S.into())));
        assert_eq!(set(&d, "x-b3-sampled"), Some(Some("1".into())));
        assert_eq!(set(&d, "x-b3-flags"), Some(None), "ignored, so dropped");
        let d = run(
            &[("b3", &format!("{}-{S}-1", T32.to_uppercase()))],
            &Config::default(),
        );
        assert_eq!(d.source, Source::B3Single);
        assert_eq!(set(&d, "x-b3-traceid"), Some(Some(T32.into())));
    }

    #[test]
    fn a_deferred_decision_takes_the_one_of_the_same_position() {
        // B3 defers; the traceparent of the same position says "not sampled": that decision is
        // taken, so the traceparent goes on as it came (never its parent-id with another flag).
        let tp = format!("00-{T32}-{S}-00");
        let d = run(
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("traceparent", &tp),
            ],
            &Config::default(),
        );
        assert_eq!(d.context.sampling, Sampling::Deny);
        assert_eq!(set(&d, "traceparent"), None);
        assert_eq!(set(&d, "x-b3-sampled"), Some(Some("0".into())));
    }

    /// Issue 11's bug: a format outside `precedence` flowed on beside the filter's context.
    #[test]
    fn one_context_upstream_whatever_the_configuration() {
        let w3c_only = Config {
            precedence: vec![W3c],
            outputs: vec![W3c],
            ..Config::default()
        };
        let d = run(&[("b3", &format!("{T32}-{S}-1"))], &w3c_only);
        assert_eq!(d.source, Source::Injected);
        assert_eq!(set(&d, "b3"), Some(None), "the unread b3 goes");
        let tp = set(&d, "traceparent").unwrap().unwrap();
        assert!(tp.contains(&d.report.unwrap().to_hex32()));

        let w3c_first = Config {
            precedence: vec![W3c, B3Multi],
            outputs: vec![B3Multi],
            ..Config::default()
        };
        let d = run(&[("b3", &format!("{T32}-{S}-1"))], &w3c_first);
        assert_eq!(set(&d, "b3"), Some(None));
        assert!(set(&d, "x-b3-traceid").unwrap().is_some());
        // An unread format that says exactly the chosen context may stay.
        let d = run(
            &[
                ("traceparent", &format!("00-{T32}-{S}-01")),
                ("b3", &format!("{T32}-{S}-1")),
            ],
            &w3c_only,
        );
        assert_eq!(d.source, Source::W3c);
        assert!(d.edits.is_empty(), "{:?}", d.edits);
    }

    fn on_tracer_hop(headers: &[(&str, &str)], reads_w3c: bool) -> Decision {
        decide_in(
            headers,
            &Config::default(),
            Mode::Tracer(TracerKind::Zipkin { reads_w3c }),
        )
    }

    #[test]
    fn tracer_hop_joined_b3_is_reported_and_nothing_contradicts_it() {
        let d = on_tracer_hop(
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("traceparent", TP),
                ("tracestate", "a=1"),
            ],
            false,
        );
        assert_eq!(d.report.map(|t| t.to_hex32()).as_deref(), Some(T32));
        // The router writes the tracer's x-b3-*; the filter writes no ids of its own.
        assert!(d.edits.iter().all(|e| e.value.is_none()), "{:?}", d.edits);
        assert_eq!(
            set(&d, "traceparent"),
            Some(None),
            "USE_B3 leaves traceparent stale: removed"
        );
        assert_eq!(set(&d, "tracestate"), Some(None));
        // Upper case is malformed by the spec but Envoy joins it lower-cased: that id is reported.
        let d = on_tracer_hop(
            &[
                ("x-b3-traceid", "463AC35C9F6413AD48485A3953BB6124"),
                ("x-b3-spanid", S),
            ],
            false,
        );
        assert_eq!(d.report.map(|t| t.to_hex32()).as_deref(), Some(T32));
        assert!(
            d.malformed.is_empty() && d.normalised,
            "read leniently, as Envoy does"
        );
    }

    #[test]
    fn tracer_hop_new_root_has_no_reportable_id() {
        for headers in [
            &[][..],
            &[("traceparent", TP)],
            &[("x-b3-traceid", T32)],
            &[("b3", "1")],
        ] {
            let d = on_tracer_hop(headers, false);
            assert_eq!(d.report, None, "{headers:?}");
            assert!(
                d.edits.iter().all(|e| e.value.is_none()),
                "no ids written: {:?}",
                d.edits
            );
        }
    }

    #[test]
    fn tracer_hop_with_w3c_propagation_joins_traceparent_and_keeps_its_tracestate() {
        let d = on_tracer_hop(
            &[("traceparent", TP), ("tracestate", "congo=t61rcWkgMzE")],
            true,
        );
        assert_eq!(
            d.report.map(|t| t.to_hex32()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        // Envoy rewrites traceparent itself (the filter's removal goes first); the tracestate
        // goes on with it.
        assert_eq!(set(&d, "traceparent"), Some(None));
        assert_eq!(set(&d, "tracestate"), None);
        // B3 wins in Envoy: the tracestate of the other trace goes.
        let d = on_tracer_hop(
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("traceparent", TP),
                ("tracestate", "a=1"),
            ],
            true,
        );
        assert_eq!(d.report.map(|t| t.to_hex32()).as_deref(), Some(T32));
        assert_eq!(set(&d, "tracestate"), Some(None));
        assert_eq!(
            set(&d, "traceparent"),
            Some(None),
            "the tracer writes its own"
        );
    }

    #[test]
    fn tracer_hop_b3_single_written_back_so_stale_multi_goes() {
        let d = on_tracer_hop(
            &[
                ("b3", &format!("{T32}-{S}-1")),
                ("x-b3-traceid", "48485a3953bb6124"),
                ("x-b3-spanid", S),
            ],
            false,
        );
        assert_eq!(d.report.map(|t| t.to_hex32()).as_deref(), Some(T32));
        assert_eq!(set(&d, "x-b3-traceid"), Some(None));
        assert_eq!(set(&d, "x-b3-spanid"), Some(None));
    }

    #[test]
    fn tracer_hop_without_a_span_lets_the_repaired_context_flow() {
        let d = on_tracer_hop(
            &[("x-b3-traceid", "463ac35c9f6413ad4"), ("x-b3-spanid", S)],
            false,
        );
        assert_eq!(d.source, Source::Repaired);
        let written = set(&d, "x-b3-traceid").unwrap().unwrap();
        assert_eq!(d.report.map(|t| t.to_b3()), Some(written));
        assert!(set(&d, "traceparent").unwrap().is_some());
    }

    #[test]
    fn undecided_and_traced_leaves_the_context_to_whichever_tracer_runs() {
        let traced = ("x-request-id", "83733a38-4bd4-9cc2-8e5b-1d5f6b7a8c9d");
        let mode = Mode::Undecided {
            own_span: false,
            zipkin: TracerKind::Zipkin { reads_w3c: false },
        };
        // Without Envoy's mark, the request is planned and reported as on a plain hop.
        let d = decide_in(&[], &Config::default(), mode);
        assert!(d.report.is_some() && d.left.is_some());
        let d = decide_in(
            &[
                traced,
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("traceparent", TP),
                ("tracestate", "a=1"),
            ],
            &Config::default(),
            mode,
        );
        assert_eq!(d.report, None);
        assert_eq!(d.left, None);
        assert!(d.edits.iter().all(|e| e.value.is_none()));
        for name in ["x-b3-traceid", "x-b3-spanid", "traceparent", "tracestate"] {
            assert_eq!(set(&d, name), Some(None), "{name}");
        }
        let d = decide_in(&[traced], &Config::default(), mode);
        assert!(d.edits.is_empty() && d.report.is_none());
    }

    #[test]
    fn beside_opentelemetry_b3_goes_and_a_joined_traceparent_is_told() {
        let otel = Mode::Tracer(TracerKind::OpenTelemetry);
        let d = decide_in(
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("traceparent", TP),
                ("tracestate", "a=1"),
            ],
            &Config::default(),
            otel,
        );
        assert_eq!(
            d.report.map(|t| t.to_hex32()).as_deref(),
            Some(crate::test_fixtures::W3C_TRACE)
        );
        assert_eq!(
            set(&d, "x-b3-traceid"),
            Some(None),
            "B3 would contradict the tracer"
        );
        assert_eq!(
            set(&d, "traceparent"),
            Some(None),
            "the tracer writes its own"
        );
        assert_eq!(
            set(&d, "tracestate"),
            None,
            "it goes on with the joined traceparent"
        );
        // B3 only: a new trace nobody knows yet; the B3 goes.
        let d = decide_in(&[("b3", &format!("{T32}-{S}-1"))], &Config::default(), otel);
        assert_eq!(d.report, None);
        assert_eq!(set(&d, "b3"), Some(None));
        // A traceparent Envoy refuses: no span; the filter's repair flows and is told.
        let d = decide_in(&[("traceparent", "garbage")], &Config::default(), otel);
        let written = set(&d, "traceparent").unwrap().unwrap();
        assert!(written.contains(&d.report.unwrap().to_hex32()));
    }

    #[test]
    fn a_participant_is_a_child_of_the_incoming_context() {
        let headers = [
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
            ("x-b3-sampled", "1"),
            ("traceparent", &*format!("00-{T32}-{S}-01")),
            ("tracestate", "a=1"),
        ];
        let cfg = Config::default();
        let d = run(&headers, &cfg);
        assert!(d.edits.is_empty(), "a pass-through would change nothing");
        let d = decide_in(&headers, &cfg, Mode::Plain { own_span: true });
        // Counter(0): the filter's span id is the first id drawn.
        assert_eq!(d.context.span_id, SpanId(1));
        assert_eq!(
            d.context.parent_span_id.map(|p| p.to_hex()).as_deref(),
            Some(S)
        );
        assert_eq!(set(&d, "x-b3-traceid"), Some(Some(T32.into())));
        assert_eq!(
            set(&d, "x-b3-spanid"),
            Some(Some("0000000000000001".into()))
        );
        assert_eq!(set(&d, "x-b3-parentspanid"), Some(Some(S.into())));
        assert_eq!(
            set(&d, "traceparent"),
            Some(Some(format!("00-{T32}-0000000000000001-01")))
        );
        assert_eq!(
            set(&d, "tracestate"),
            None,
            "same trace, parent-id updated: tracestate kept"
        );
        // A new trace's root is the filter's own span already.
        assert_eq!(
            run(&[], &cfg),
            decide_in(&[], &cfg, Mode::Plain { own_span: true })
        );
    }

    // Mutation testing (make mutants) found these two untested.
    #[test]
    fn only_a_leniently_read_winner_is_normalised() {
        let cfg = Config::default();
        let d = run(&[("x-b3-traceid", T32), ("x-b3-spanid", S)], &cfg);
        assert!(!d.normalised, "strict input");
        let upper = T32.to_ascii_uppercase();
        let d = run(&[("x-b3-traceid", &upper), ("x-b3-spanid", S)], &cfg);
        assert!(d.normalised, "upper case, written lower case");
    }

    #[test]
    fn a_decided_winner_keeps_its_decision_beside_a_sibling_with_another() {
        // W3C first: its `01` wins over the B3 `0` at the same position (a deferred winner would
        // take the sibling's; a decided one never does).
        let cfg = Config {
            precedence: vec![Format::W3c, Format::B3Multi, Format::B3Single],
            ..Config::default()
        };
        let tp = format!("00-{T32}-{S}-01");
        let headers = [
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
            ("x-b3-sampled", "0"),
            ("traceparent", tp.as_str()),
        ];
        let d = run(&headers, &cfg);
        assert_eq!(d.source, Source::W3c);
        assert_eq!(d.context.sampling, Sampling::Accept);
    }

    #[test]
    fn a_sampling_percentage_between_0_and_100_compares_the_draw_modulo_a_million() {
        struct Draw(u64);
        impl IdSource for Draw {
            fn next_u64(&mut self) -> u64 {
                self.0
            }
        }
        let s = Settings::from(Config {
            sampling_percent: 30.0,
            ..Config::default()
        });
        for (draw, want) in [
            (0, Sampling::Accept),
            (299_999, Sampling::Accept),
            (300_000, Sampling::Deny),
            (999_999, Sampling::Deny),
            // Modulo a million: 1_299_999 is a hit, 999_999_999 (999 by division) a miss.
            (1_299_999, Sampling::Accept),
            (999_999_999, Sampling::Deny),
        ] {
            assert_eq!(sample(&s, &mut Draw(draw)), want, "draw {draw}");
        }
    }
}
