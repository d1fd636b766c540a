//! The per-request decision, in three steps: read what came in (every format through its
//! propagator), resolve one context (sampling decided here), and plan the header edits for what
//! is known of this hop. Pure: headers in, edits out.

use crate::config::TrustIncoming;
use crate::context::{Format, Parsed, Sampling, TraceContext};
use crate::formats;
use crate::headers::{Edit, TraceHeaders, TraceReason, CLIENT_TRACE_ID, FORCE_TRACE, REQUEST_ID};
use crate::hop::Hop;
use crate::ids::{IdSource, TraceId};
use crate::propagator::Extracted;
use crate::settings::{NewTraces, Settings};
use crate::tracer::{Outcome, Prediction, TracerKind};
use crate::w3c::{self, Outgoing};

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

/// What the adapter knows of one request besides its headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Circumstances {
    /// What runs on this hop, as far as known.
    pub hop: Hop,
    /// The filter exports its own spans (on a hop without a tracer, it then takes part in the
    /// trace with a span of its own).
    pub exporting: bool,
    /// The caller may choose the trace (`trust_incoming`, as the adapter judged this request).
    pub trusted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The context the filter resolved (beside a tracer that makes a span, the tracer's ids
    /// replace it upstream; while the hop is unknown, only what the caller sent goes on).
    pub context: TraceContext,
    /// The context the filter forwarded in each format (`Format::ALL` order: written, or kept as
    /// it came), `None` where it forwarded none: what `on_log` compares with what the request
    /// carried at the end, to learn whether a tracer ran.
    pub forwarded: [Option<TraceContext>; 3],
    pub source: Source,
    pub edits: Vec<Edit>,
    /// Malformed input that was replaced or removed: (header, reason), for the debug log.
    pub malformed: Vec<(&'static str, &'static str)>,
    /// Valid formats disagreed; the one first in `precedence` won.
    pub conflict: bool,
    /// The caller's context was not trusted (`trust_incoming`) and not continued; its trace
    /// id, when it sent a valid one, is kept for correlation.
    pub restarted: bool,
    pub caller_trace_id: Option<TraceId>,
    /// The context that went on was read leniently (upper-case B3 ids, `true`/`false`, an
    /// ignored `x-b3-flags`) and is written back in canonical form.
    pub normalised: bool,
    /// The trace id the caller may be told: the trace this request's spans end up in (or, where
    /// no span is made on this hop, the one the next hop joins). `None` when it cannot be known
    /// before the response (Envoy's tracer starts a new trace; the hop is not known yet).
    pub told_trace_id: Option<TraceId>,
    /// The filter reports a span of its own for this request (`context`'s span id).
    pub own_span: bool,
    /// Some incoming trace header, trusted or not, says sampled or debug (a tracer on this hop
    /// honours it).
    pub sampled_by_caller: bool,
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
    sampled_by_caller: bool,
}

impl Incoming {
    fn read(h: &TraceHeaders, s: &Settings, trusted: bool) -> Incoming {
        let states = formats::extract_all(h);
        let found = formats::first_context(&states, &s.precedence);
        // An untrusted caller's context (and sampling decision) is not continued.
        let winner = found.filter(|_| trusted);
        let mut malformed = Vec::new();
        let mut conflict = false;
        for &f in &s.precedence {
            match states.get(f.index()).map(|e| &e.parsed) {
                Some(Parsed::Malformed(why)) => malformed.push((formats::of(f).label(), *why)),
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
        let sampled_by_caller = states.iter().any(|e| match e.parsed {
            Parsed::Context(c) => c.sampling.sampled(),
            Parsed::SamplingOnly(s) => s.sampled(),
            _ => false,
        });
        Incoming {
            sampled_by_caller,
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

    /// The decision for this input, with what a plan settled: its edits (and the malformed
    /// input they removed); nothing forwarded, nothing told, no span of its own, until the plan
    /// says so.
    fn decision(
        &self,
        context: TraceContext,
        source: Source,
        edits: Vec<Edit>,
        malformed: Vec<(&'static str, &'static str)>,
    ) -> Decision {
        Decision {
            context,
            forwarded: [None; 3],
            source,
            edits,
            malformed,
            conflict: self.conflict,
            normalised: self.normalised(),
            restarted: self.restarted,
            caller_trace_id: self.caller_trace_id,
            told_trace_id: None,
            own_span: false,
            sampled_by_caller: self.sampled_by_caller,
        }
    }

    /// Step 2: the context that goes on, and how it came.
    fn resolve(
        &self,
        s: &Settings,
        h: &TraceHeaders,
        ids: &mut impl IdSource,
    ) -> (TraceContext, Source) {
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
                let decided = match s.new_traces {
                    NewTraces::Envoy => envoys_decision(h, self.trusted),
                    _ => draw(s.deferred_per_million, ids),
                };
                let sampling = sibling.unwrap_or(decided);
                (TraceContext { sampling, ..c }, Source::of(f))
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
                let sampling = match (sent, s.new_traces) {
                    (Some(decision), _) => decision,
                    (None, NewTraces::Defer) => Sampling::Defer,
                    (None, NewTraces::Envoy) => envoys_decision(h, self.trusted),
                    (None, NewTraces::PerMillion(p)) => draw(p, ids),
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

/// Decides what the request carries upstream and what the caller is told.
pub fn decide(
    h: &TraceHeaders,
    s: &Settings,
    at: Circumstances,
    ids: &mut impl IdSource,
) -> Decision {
    let incoming = Incoming::read(h, s, at.trusted);
    let (context, source) = incoming.resolve(s, h, ids);
    let mut d = match at.hop {
        Hop::Unknown => while_learning(incoming, context, source, h, s),
        Hop::Tracer(kind) => match kind.predict(h) {
            p if p.outcome != Outcome::NoSpan => beside_tracer(p, incoming, context, source, h),
            // No span, nothing injected: the filter's (repaired) context is what flows.
            _ => plain(incoming, context, source, h, s, false, ids),
        },
        Hop::Plain => plain(incoming, context, source, h, s, at.exporting, ids),
    };
    if !at.trusted {
        neutralise_forced_tracing(h, &mut d.edits);
    }
    d
}

/// Where the filter's context flows (no tracer, or one that makes no span for this request).
fn plain(
    incoming: Incoming,
    mut context: TraceContext,
    source: Source,
    h: &TraceHeaders,
    s: &Settings,
    exporting: bool,
    ids: &mut impl IdSource,
) -> Decision {
    let own_span = exporting && context.sampling.sampled();
    if own_span && incoming.winner.is_some() {
        // The filter's own span, a child of the caller's: the upstream gets its id as the parent
        // (B3 `x-b3-parentspanid`; W3C "update parent-id"). A new trace's root is the filter's
        // span already.
        context.parent_span_id = Some(context.span_id);
        context.span_id = ids.span_id();
    }
    let mut malformed = incoming.malformed.clone();
    let (edits, forwarded) = plan_plain(&incoming, &context, h, s, &mut malformed);
    Decision {
        forwarded,
        told_trace_id: Some(context.trace_id),
        own_span,
        ..incoming.decision(context, source, edits, malformed)
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
) -> (Vec<Edit>, [Option<TraceContext>; 3]) {
    let mut edits = Vec::new();
    let mut forwarded = [None; 3];
    for f in Format::ALL {
        let p = formats::of(f);
        let state = incoming.state(f);
        let same = state.context().is_some_and(|c| p.agrees(ctx, c));
        let forward = if s.outputs.contains(f) && p.can_carry(ctx) {
            if !(same && state.exact) {
                p.inject(ctx, h, &mut edits);
            }
            true
        } else if p.present(h) {
            // A bare sampling decision is dropped too: beside a context in another B3 form it
            // makes the next B3 reader (Envoy's Zipkin tracer reads `b3` alone) start a new trace.
            // With no outputs at all (an egress), nothing goes on.
            if s.outputs.is_empty() || !same {
                p.remove(h, &mut edits);
                false
            } else {
                if !state.exact {
                    p.inject(ctx, h, &mut edits);
                }
                true
            }
        } else {
            false
        };
        if let (true, Some(slot)) = (forward, forwarded.get_mut(f.index())) {
            *slot = Some(*ctx);
        }
    }
    let outgoing = Outgoing::planned(&edits, ctx);
    let incoming_tp = incoming.state(Format::W3c).context();
    w3c::plan_tracestate(h, incoming_tp, outgoing, &mut edits, malformed);
    (edits, forwarded)
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
        formats::of(f).remove(h, &mut edits);
    }
    let joined = prediction.outcome.trace_id();
    // The tracestate goes on only with a traceparent the tracer joins and writes on.
    let outgoing = match joined {
        Some(t) if prediction.writes.contains(Format::W3c) => {
            Outgoing::Written(TraceId::new_128(t))
        }
        _ => Outgoing::Nothing,
    };
    let mut malformed = incoming.malformed.clone();
    let incoming_tp = incoming.state(Format::W3c).context();
    w3c::plan_tracestate(h, incoming_tp, outgoing, &mut edits, &mut malformed);
    // The tracer joined the caller's trace before any filter ran: nobody restarted it.
    Decision {
        restarted: false,
        caller_trace_id: None,
        told_trace_id: joined.map(TraceId::new_128),
        ..incoming.decision(context, source, edits, malformed)
    }
}

/// Every tracer a hop may run, for the plan while the hop is not known.
const CANDIDATE_TRACERS: [TracerKind; 4] = [
    TracerKind::Zipkin { reads_w3c: false },
    TracerKind::Zipkin { reads_w3c: true },
    TracerKind::OpenTelemetry,
    TracerKind::Datadog,
];

/// Step 3 while the hop is not known: any context the filter wrote would contradict some tracer
/// (Zipkin rewrites B3 and leaves `traceparent`; OpenTelemetry the other way round), so it writes
/// none of its own. The caller's context goes on (in canonical form) only where every possible
/// hop continues it — then the caller is told its trace; elsewhere every trace header goes, so
/// that no request leaves with two traces (B3 alone beside an OpenTelemetry tracer, which starts
/// another one in `traceparent`). A bare sampling decision, all the caller sent, goes on.
fn while_learning(
    incoming: Incoming,
    context: TraceContext,
    source: Source,
    h: &TraceHeaders,
    s: &Settings,
) -> Decision {
    let mut edits = Vec::new();
    let mut forwarded = [None; 3];
    let mut malformed = incoming.malformed.clone();
    let continued = incoming
        .winner
        .map(|(_, w)| w)
        .filter(|w| !s.outputs.is_empty() && every_hop_continues(h, w));
    let decision_only = incoming.trusted && incoming.winner.is_none() && !s.outputs.is_empty();
    let mut outgoing = Outgoing::Nothing;
    for f in Format::ALL {
        let p = formats::of(f);
        if !p.present(h) {
            continue;
        }
        let state = incoming.state(f);
        match (&state.parsed, continued) {
            (Parsed::Context(c), Some(w)) if c.same_position(&w) => {
                if !state.exact {
                    p.inject(c, h, &mut edits);
                }
                if f == Format::W3c {
                    outgoing = if state.exact {
                        Outgoing::AsItCame
                    } else {
                        Outgoing::Written(c.trace_id)
                    };
                }
                if let Some(slot) = forwarded.get_mut(f.index()) {
                    *slot = Some(*c);
                }
            }
            (Parsed::SamplingOnly(_), _) if decision_only => {}
            _ => p.remove(h, &mut edits),
        }
    }
    let incoming_tp = incoming.state(Format::W3c).context();
    w3c::plan_tracestate(h, incoming_tp, outgoing, &mut edits, &mut malformed);
    Decision {
        forwarded,
        told_trace_id: continued.map(|w| w.trace_id),
        ..incoming.decision(context, source, edits, malformed)
    }
}

/// Whether the caller's context `w`, forwarded, is the trace the request ends up in whatever runs
/// on this hop: no tracer (it flows as forwarded), or any tracer that joins it or makes no span.
fn every_hop_continues(h: &TraceHeaders, w: &TraceContext) -> bool {
    CANDIDATE_TRACERS
        .iter()
        .all(|k| match k.predict(h).outcome {
            Outcome::Join(t) => t == w.trace_id.value,
            Outcome::NoSpan => true,
            Outcome::NewRoot => false,
        })
}

/// For a caller that may not choose the trace: what would make the next connection manager
/// trace this request on the caller's word goes — `x-client-trace-id`, `x-envoy-force-trace`,
/// and the trace mark in a request id that Envoy kept as the caller sent it
/// (`use_remote_address: false`, `preserve_external_request_id`). The next hop decides afresh.
fn neutralise_forced_tracing(h: &TraceHeaders, edits: &mut Vec<Edit>) {
    if h.client_trace_id {
        edits.push(Edit::remove(CLIENT_TRACE_ID));
    }
    if h.force_trace {
        edits.push(Edit::remove(FORCE_TRACE));
    }
    if let Some(cleared) = h.request_id.and_then(TraceReason::cleared) {
        edits.push(Edit::set(REQUEST_ID, cleared));
    }
}

/// Envoy's sampling decision, as its connection manager marked it in the request id: random
/// sampling; and, for a caller that may choose, `x-envoy-force-trace` and `x-client-trace-id`.
/// An unmarked id is "not sampled" (where the HCM has a `tracing` block, every id is marked).
fn envoys_decision(h: &TraceHeaders, trusted: bool) -> Sampling {
    match h.trace_reason() {
        Some(TraceReason::Sampled) => Sampling::Accept,
        Some(TraceReason::Forced | TraceReason::Client) if trusted => Sampling::Accept,
        _ => Sampling::Deny,
    }
}

fn draw(per_million: u32, ids: &mut impl IdSource) -> Sampling {
    let hit = match per_million {
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

/// Whether `trust_incoming` lets this caller choose the trace, from what Envoy says of it.
pub fn trusts(trust: TrustIncoming, envoy_internal: bool, mtls: impl FnOnce() -> bool) -> bool {
    match trust {
        TrustIncoming::All => true,
        TrustIncoming::None => false,
        // Internal by Envoy's own judgement (use_remote_address), or a peer that presented a
        // certificate (only read when asked for: a property read per request).
        TrustIncoming::Internal => envoy_internal || mtls(),
    }
}

#[cfg(test)]
mod tests;
