//! The per-request decision: which context the request carries on, and the header edits that
//! make every configured format say it. Pure: headers in, edits out.

use crate::b3::{self, MultiHeaders};
use crate::config::Config;
use crate::context::{Format, Parsed, Sampling, TraceContext};
use crate::envoy_tracer;
use crate::ids::{IdSource, SpanId, TraceId};
use crate::w3c;

/// The trace headers of one request, as received (names matched case-insensitively).
#[derive(Default, Debug)]
pub struct TraceHeaders<'a> {
    pub b3: MultiHeaders<'a>,
    /// Some `x-b3-*` header came more than once (the first value wins; the rest are dropped).
    pub b3_repeated: bool,
    pub b3_single: Option<&'a [u8]>,
    pub b3_single_repeated: bool,
    pub traceparent: Option<&'a [u8]>,
    pub traceparent_repeated: bool,
    pub tracestate: Vec<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
}

impl<'a> TraceHeaders<'a> {
    pub fn collect<I>(headers: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut h = TraceHeaders::default();
        fn first<'v>(slot: &mut Option<&'v [u8]>, v: &'v [u8], repeated: &mut bool) {
            if slot.is_some() {
                *repeated = true;
            } else {
                *slot = Some(v);
            }
        }
        for (name, value) in headers {
            // Dispatch on the length first: most headers of a request are none of ours.
            // Envoy's header names are lower case already: the exact comparison is the fast path.
            let is = |s: &str| name == s || name.eq_ignore_ascii_case(s);
            match name.len() {
                2 if is(b3::SINGLE) => first(&mut h.b3_single, value, &mut h.b3_single_repeated),
                10 if is(b3::FLAGS) => first(&mut h.b3.flags, value, &mut h.b3_repeated),
                10 if is(w3c::TRACESTATE) => h.tracestate.push(value),
                11 if is(b3::SPAN_ID) => first(&mut h.b3.span_id, value, &mut h.b3_repeated),
                11 if is(w3c::TRACEPARENT) => {
                    first(&mut h.traceparent, value, &mut h.traceparent_repeated)
                }
                12 if is(b3::TRACE_ID) => first(&mut h.b3.trace_id, value, &mut h.b3_repeated),
                12 if is(b3::SAMPLED) => first(&mut h.b3.sampled, value, &mut h.b3_repeated),
                12 if is("x-request-id") => h.request_id = Some(value),
                17 if is(b3::PARENT_SPAN_ID) => {
                    first(&mut h.b3.parent_span_id, value, &mut h.b3_repeated)
                }
                _ => {}
            }
        }
        h
    }
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
    pub fn name(self) -> &'static str {
        match self {
            Source::B3Multi => "b3",
            Source::B3Single => "b3-single",
            Source::W3c => "w3c",
            Source::Injected => "injected",
            Source::Repaired => "repaired",
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

/// One request-header change: set `name` to `value`, or remove it (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub name: &'static str,
    pub value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The context the request carries upstream.
    pub context: TraceContext,
    pub source: Source,
    pub edits: Vec<Edit>,
    /// Malformed input that was replaced or removed: (header, reason), for the debug log.
    pub malformed: Vec<(&'static str, &'static str)>,
    /// Valid formats disagreed; the one first in `precedence` won.
    pub conflict: bool,
    /// The trace id the caller may be told: the trace this request's spans end up in (or, where
    /// no span is made on this hop, the one the next hop joins). `None` when it cannot be known
    /// before the response (Envoy's tracer starts a new trace).
    pub report: Option<TraceId>,
}

/// What runs on this hop besides the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// No tracer: the filter's context is the one that flows.
    Plain,
    /// Envoy's Zipkin tracer; `reads_w3c` is its `USE_B3_WITH_W3C_PROPAGATION` option.
    Tracer { reads_w3c: bool },
}

/// `decide`, for the hop as it is. Where Envoy's tracer makes a span, its router writes the ids
/// (after this filter ran): the filter then writes no ids of its own, only removes headers that
/// would contradict the tracer's, and reports the trace id only when it knows it.
pub fn decide_for_hop(
    h: &TraceHeaders,
    cfg: &Config,
    hop: Hop,
    ids: &mut impl IdSource,
) -> Decision {
    let mut d = decide(h, cfg, ids);
    let Hop::Tracer { reads_w3c } = hop else {
        return d;
    };
    let prediction = envoy_tracer::predict(h, reads_w3c);
    if prediction.outcome == envoy_tracer::Outcome::NoSpan {
        // No span, nothing injected: the filter's (repaired) context is what flows.
        return d;
    }
    d.report = prediction.outcome.trace_id().map(TraceId::new_128);
    let mut edits = Vec::new();
    if prediction.writes_b3_single {
        // The router rewrites `b3` only; `x-b3-*` would be left stale.
        if !h.b3.is_empty() {
            remove_format(Format::B3Multi, h, &mut edits);
        }
    } else if h.b3.flags.is_some_and(|f| f != b"1") {
        // Envoy passes `x-b3-flags` through untouched; only `1` means anything.
        edits.push(remove(b3::FLAGS));
    }
    if h.traceparent.is_some() && !reads_w3c {
        // Without W3C propagation the tracer leaves `traceparent` as it came: its parent-id (and,
        // unless it is the trace being joined, its trace-id) would disagree with the B3 ids.
        edits.push(remove(w3c::TRACEPARENT));
    }
    if !h.tracestate.is_empty() {
        let same_trace = reads_w3c
            && !h.traceparent_repeated
            && h.traceparent
                .and_then(|v| w3c::parse_traceparent(v).ok())
                .is_some_and(|tp| d.report.is_some_and(|r| r.same_trace(&tp.context.trace_id)));
        let valid = same_trace && {
            let combined = h.tracestate.join(&b","[..]);
            w3c::validate_tracestate(&combined).is_ok()
        };
        if !valid {
            edits.push(remove(w3c::TRACESTATE));
        }
    }
    d.edits = edits;
    d
}

/// Resolves the incoming context and plans the edits, for a hop where this filter's context is
/// the one that flows (no Envoy tracer, or one that makes no span for this request).
pub fn decide(h: &TraceHeaders, cfg: &Config, ids: &mut impl IdSource) -> Decision {
    let read = |f: Format| cfg.precedence.contains(&f);
    let mut traceparent_canonical = true;
    let parsed = |f: Format, canonical: &mut bool| -> Parsed {
        if !read(f) {
            return Parsed::Absent;
        }
        match f {
            Format::B3Multi => b3::parse_multi(&h.b3),
            Format::B3Single => h.b3_single.map_or(Parsed::Absent, b3::parse_single),
            Format::W3c => match h.traceparent {
                None => Parsed::Absent,
                Some(_) if h.traceparent_repeated => {
                    Parsed::Malformed("traceparent appears more than once")
                }
                Some(v) => {
                    let (p, c) = w3c::parse(v);
                    *canonical = c;
                    p
                }
            },
        }
    };
    let states: [(Format, Parsed); 3] =
        Format::ALL.map(|f| (f, parsed(f, &mut traceparent_canonical)));
    let state = |f: Format| -> &Parsed {
        states
            .iter()
            .find(|(g, _)| *g == f)
            .map_or(&Parsed::Absent, |(_, p)| p)
    };

    let mut malformed = Vec::new();
    for (f, p) in &states {
        if let Parsed::Malformed(why) = p {
            malformed.push((header_of(*f), *why));
        }
    }

    let winner = cfg.precedence.iter().find_map(|f| match state(*f) {
        Parsed::Context(c) => Some((*f, *c)),
        _ => None,
    });
    let (context, source) = match winner {
        // A deferred decision is the receiver's to make (B3 spec): this filter makes it, so every
        // format carries the same one, rather than W3C reading "not sampled" into the deferral.
        Some((f, c)) if c.sampling == Sampling::Defer => (
            TraceContext {
                sampling: sample(cfg, ids),
                ..c
            },
            Source::of(f),
        ),
        Some((f, c)) => (c, Source::of(f)),
        None => {
            let sampling = cfg
                .precedence
                .iter()
                .find_map(|f| match state(*f) {
                    Parsed::SamplingOnly(s) => Some(*s),
                    _ => None,
                })
                .unwrap_or_else(|| sample(cfg, ids));
            let context = TraceContext {
                trace_id: ids.trace_id(),
                span_id: ids.span_id(),
                parent_span_id: None,
                sampling,
            };
            let source = if malformed.is_empty() {
                Source::Injected
            } else {
                Source::Repaired
            };
            (context, source)
        }
    };
    let winner_format = winner.map(|(f, _)| f);

    let mut conflict = false;
    let mut edits = Vec::new();
    let mut traceparent_removed_or_replaced = false;
    for f in Format::ALL {
        let repeated = match f {
            Format::B3Multi => h.b3_repeated,
            Format::B3Single => h.b3_single_repeated,
            Format::W3c => h.traceparent_repeated,
        };
        let agrees = match state(f) {
            Parsed::Context(c) => {
                // A conflict is another valid format naming a different position in a trace
                // (not a sampling decision the filter made for a deferred one).
                if winner_format != Some(f)
                    && (!c.trace_id.same_trace(&context.trace_id) || c.span_id != context.span_id)
                {
                    conflict = true;
                }
                context.agrees_with(c, f != Format::W3c)
            }
            _ => false,
        };
        let canonical = f != Format::W3c || traceparent_canonical;
        if cfg.outputs.contains(&f) {
            if !(agrees && canonical && !repeated) {
                write_format(f, &context, h, &mut edits);
                if f == Format::W3c {
                    traceparent_removed_or_replaced = true;
                }
            }
        } else {
            let remove = match state(f) {
                Parsed::Malformed(_) => true,
                Parsed::Context(_) => !agrees,
                // A bare decision has no single value to normalise repeats to.
                Parsed::SamplingOnly(s) => repeated || *s != context.sampling,
                Parsed::Absent => false,
            };
            if remove {
                remove_format(f, h, &mut edits);
                if f == Format::W3c {
                    traceparent_removed_or_replaced = true;
                }
            } else if agrees && (repeated || !canonical) {
                // Same context, but duplicated or a future traceparent version: normalise.
                write_format(f, &context, h, &mut edits);
            }
        }
    }

    // An unread, unwritten traceparent is not this filter's: nor is its tracestate.
    if read(Format::W3c) || cfg.outputs.contains(&Format::W3c) {
        if let Some((edit, why)) =
            tracestate_edit(h, &context, traceparent_removed_or_replaced, cfg)
        {
            if let Some(why) = why {
                malformed.push((w3c::TRACESTATE, why));
            }
            edits.push(edit);
        }
    }

    Decision {
        context,
        source,
        edits,
        malformed,
        conflict,
        report: Some(context.trace_id),
    }
}

/// `tracestate` belongs to the `traceparent` it came with: kept only while that trace goes on
/// (a parent-id update keeps it) and only while valid. Returns the removal, with the reason when
/// the tracestate itself was malformed.
fn tracestate_edit(
    h: &TraceHeaders,
    context: &TraceContext,
    traceparent_changed: bool,
    cfg: &Config,
) -> Option<(Edit, Option<&'static str>)> {
    if h.tracestate.is_empty() {
        return None;
    }
    let same_trace = !h.traceparent_repeated
        && h.traceparent
            .and_then(|v| w3c::parse_traceparent(v).ok())
            .is_some_and(|tp| tp.context.trace_id.same_trace(&context.trace_id));
    let keep = same_trace && (!traceparent_changed || cfg.outputs.contains(&Format::W3c));
    if !keep {
        return Some((remove(w3c::TRACESTATE), None));
    }
    let combined = h.tracestate.join(&b","[..]);
    match w3c::validate_tracestate(&combined) {
        Ok(()) => None,
        Err(why) => Some((remove(w3c::TRACESTATE), Some(why))),
    }
}

/// With `export` on, this filter takes part in the trace: its own span, a child of the incoming
/// context, so the upstream gets the filter's span id and the incoming one as parent (B3
/// `x-b3-parentspanid`; W3C "update parent-id"). A new trace's root span is already the filter's.
pub fn as_participant(
    mut d: Decision,
    h: &TraceHeaders,
    cfg: &Config,
    span_id: SpanId,
) -> Decision {
    if matches!(d.source, Source::Injected | Source::Repaired) {
        return d;
    }
    d.context.parent_span_id = Some(d.context.span_id);
    d.context.span_id = span_id;
    let mut edits = Vec::new();
    for f in Format::ALL {
        let present = match f {
            Format::B3Multi => !h.b3.is_empty(),
            Format::B3Single => h.b3_single.is_some(),
            Format::W3c => h.traceparent.is_some(),
        };
        if cfg.outputs.contains(&f) {
            write_format(f, &d.context, h, &mut edits);
        } else if present {
            // It still names the caller's span: no longer this request's position.
            remove_format(f, h, &mut edits);
        }
    }
    let traceparent_changed = h.traceparent.is_some() || cfg.outputs.contains(&Format::W3c);
    if cfg.precedence.contains(&Format::W3c) || cfg.outputs.contains(&Format::W3c) {
        if let Some((edit, _)) = tracestate_edit(h, &d.context, traceparent_changed, cfg) {
            edits.push(edit);
        }
    }
    d.edits = edits;
    d.report = Some(d.context.trace_id);
    d
}

fn sample(cfg: &Config, ids: &mut impl IdSource) -> Sampling {
    let per_million = u64::from(cfg.sampling_per_million());
    let hit = match per_million {
        0 => false,
        p if p >= 1_000_000 => true,
        p => ids.next_u64() % 1_000_000 < p,
    };
    if hit {
        Sampling::Accept
    } else {
        Sampling::Deny
    }
}

fn header_of(f: Format) -> &'static str {
    match f {
        Format::B3Multi => "x-b3-*",
        Format::B3Single => b3::SINGLE,
        Format::W3c => w3c::TRACEPARENT,
    }
}

fn remove(name: &'static str) -> Edit {
    Edit { name, value: None }
}

fn write_format(f: Format, ctx: &TraceContext, h: &TraceHeaders, edits: &mut Vec<Edit>) {
    match f {
        Format::B3Multi => {
            for (name, value) in b3::format_multi(ctx) {
                // Removing a header that is not there would be a wasted host call.
                if value.is_some() || h.has_b3(name) {
                    edits.push(Edit { name, value });
                }
            }
        }
        Format::B3Single => edits.push(Edit {
            name: b3::SINGLE,
            value: Some(b3::format_single(ctx)),
        }),
        Format::W3c => edits.push(Edit {
            name: w3c::TRACEPARENT,
            value: Some(w3c::format_traceparent(ctx)),
        }),
    }
}

fn remove_format(f: Format, h: &TraceHeaders, edits: &mut Vec<Edit>) {
    match f {
        Format::B3Multi => {
            for name in [
                b3::TRACE_ID,
                b3::SPAN_ID,
                b3::PARENT_SPAN_ID,
                b3::SAMPLED,
                b3::FLAGS,
            ] {
                if h.has_b3(name) {
                    edits.push(remove(name));
                }
            }
        }
        Format::B3Single => edits.push(remove(b3::SINGLE)),
        Format::W3c => edits.push(remove(w3c::TRACEPARENT)),
    }
}

impl TraceHeaders<'_> {
    /// Whether the request came with header `name` (one of the trace headers).
    pub fn has(&self, name: &str) -> bool {
        match name {
            b3::SINGLE => self.b3_single.is_some(),
            w3c::TRACEPARENT => self.traceparent.is_some(),
            w3c::TRACESTATE => !self.tracestate.is_empty(),
            _ => self.has_b3(name),
        }
    }

    fn has_b3(&self, name: &str) -> bool {
        let b = &self.b3;
        match name {
            b3::TRACE_ID => b.trace_id.is_some(),
            b3::SPAN_ID => b.span_id.is_some(),
            b3::PARENT_SPAN_ID => b.parent_span_id.is_some(),
            b3::SAMPLED => b.sampled.is_some(),
            b3::FLAGS => b.flags.is_some(),
            _ => false,
        }
    }

    /// Envoy marks `x-request-id` (its 15th character) when a tracer sampled the request: on this
    /// hop or an earlier one, so it hints that a tracer may run here; it proves nothing.
    pub fn tracer_hint(&self) -> bool {
        matches!(
            self.request_id.and_then(|r| r.get(14)),
            Some(b'9' | b'a' | b'b')
        )
    }
}

/// Where it is not yet known whether Envoy's tracer runs on this hop: the trace id that is right
/// either way (the request's own valid B3 context, which the tracer would join, or a context the
/// tracer would make no span for), else `None`.
pub fn report_either_way(d: &Decision, h: &TraceHeaders, reads_w3c: bool) -> Option<TraceId> {
    let mine = d.report?;
    match envoy_tracer::predict(h, reads_w3c).outcome {
        envoy_tracer::Outcome::NoSpan => Some(mine),
        joined => joined.trace_id().filter(|t| *t == mine.value).map(|_| mine),
    }
}

/// The trace id as the response header carries it: 32 lower-hex.
pub fn response_trace_id(t: TraceId) -> String {
    t.to_hex32()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Format::*;

    /// Deterministic ids: 1, 2, 3, ...
    struct Counter(u64);
    impl IdSource for Counter {
        fn next_u64(&mut self) -> u64 {
            self.0 += 1;
            self.0
        }
    }

    const T32: &str = "463ac35c9f6413ad48485a3953bb6124";
    const S: &str = "a2fb4a1d1a96d312";
    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn run(headers: &[(&str, &str)], cfg: &Config) -> Decision {
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        decide(&TraceHeaders::collect(pairs), cfg, &mut Counter(0))
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
        assert_eq!(
            set(&d, "traceparent"),
            Some(Some(format!("00-{t}-0000000000000003-01")))
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
        assert!(set(&d, "traceparent").unwrap().unwrap().ends_with("-00"));
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
                ("x-b3-traceid", "463AC35C9F6413AD48485A3953BB6124"),
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
        assert_ne!(t, "463AC35C9F6413AD48485A3953BB6124");
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
        let d = run(&[("b3", "0")], &Config::default());
        assert_eq!(set(&d, "b3"), None, "agreeing decision left in place");
        assert_eq!(set(&d, "x-b3-sampled"), Some(Some("0".into())));
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
        // Invalid tracestate dropped, traceparent kept.
        let d = run(
            &[("traceparent", TP), ("tracestate", "Bad Key=1")],
            &Config::default(),
        );
        assert_eq!(d.source, Source::W3c);
        assert_eq!(set(&d, "tracestate"), Some(None));
        assert_eq!(d.malformed.len(), 1);
        // Several headers are one list: a key twice across them is invalid.
        let d = run(
            &[
                ("traceparent", TP),
                ("tracestate", "a=1"),
                ("tracestate", "a=2"),
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
        // Unread formats are neither trusted nor touched unless they are outputs.
        let cfg = Config {
            precedence: vec![B3Multi],
            outputs: vec![B3Multi],
            ..Config::default()
        };
        let d = run(&[("traceparent", "junk")], &cfg);
        assert_eq!(d.source, Source::Injected);
        assert_eq!(set(&d, "traceparent"), None);
    }

    fn on_tracer_hop(headers: &[(&str, &str)], reads_w3c: bool) -> Decision {
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let hop = Hop::Tracer { reads_w3c };
        decide_for_hop(
            &TraceHeaders::collect(pairs),
            &Config::default(),
            hop,
            &mut Counter(0),
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
        assert_eq!(d.malformed.len(), 1, "still counted as malformed input");
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
        assert!(
            d.edits.is_empty(),
            "Envoy rewrites traceparent itself: {:?}",
            d.edits
        );
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
        assert_eq!(set(&d, "traceparent"), None);
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
    fn unknown_hop_reports_only_what_holds_either_way() {
        let check = |headers: &[(&str, &str)]| {
            let pairs: Vec<(&str, &[u8])> =
                headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
            let h = TraceHeaders::collect(pairs);
            let d = decide(&h, &Config::default(), &mut Counter(0));
            report_either_way(&d, &h, false).map(|t| t.to_hex32())
        };
        assert_eq!(
            check(&[("x-b3-traceid", T32), ("x-b3-spanid", S)]).as_deref(),
            Some(T32)
        );
        assert_eq!(check(&[]), None, "a tracer would start its own trace");
        assert_eq!(check(&[("traceparent", TP)]), None);
        assert_eq!(
            check(&[
                ("x-b3-traceid", "463AC35C9F6413AD48485A3953BB6124"),
                ("x-b3-spanid", S)
            ]),
            None
        );
        assert!(
            check(&[("x-b3-traceid", "463ac35c9f6413ad4"), ("x-b3-spanid", S)]).is_some(),
            "no span either way"
        );
    }

    #[test]
    fn request_id_hint() {
        let h =
            TraceHeaders::collect([("x-request-id", &b"83733a38-4bd4-9cc2-8e5b-1d5f6b7a8c9d"[..])]);
        assert!(h.tracer_hint());
        let h =
            TraceHeaders::collect([("x-request-id", &b"83733a38-4bd4-4cc2-8e5b-1d5f6b7a8c9d"[..])]);
        assert!(!h.tracer_hint());
        assert!(!TraceHeaders::collect([("x-request-id", &b"short"[..])]).tracer_hint());
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
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let h = TraceHeaders::collect(pairs);
        let cfg = Config::default();
        let d = decide(&h, &cfg, &mut Counter(0));
        assert!(d.edits.is_empty(), "a pass-through would change nothing");
        let d = as_participant(d, &h, &cfg, SpanId(0xabc));
        assert_eq!(d.context.span_id, SpanId(0xabc));
        assert_eq!(
            d.context.parent_span_id.map(|p| p.to_hex()).as_deref(),
            Some(S)
        );
        assert_eq!(set(&d, "x-b3-traceid"), Some(Some(T32.into())));
        assert_eq!(
            set(&d, "x-b3-spanid"),
            Some(Some("0000000000000abc".into()))
        );
        assert_eq!(set(&d, "x-b3-parentspanid"), Some(Some(S.into())));
        assert_eq!(
            set(&d, "traceparent"),
            Some(Some(format!("00-{T32}-0000000000000abc-01")))
        );
        assert_eq!(
            set(&d, "tracestate"),
            None,
            "same trace, parent-id updated: tracestate kept"
        );
        // A new trace's root is the filter's own span already.
        let h = TraceHeaders::default();
        let d = decide(&h, &cfg, &mut Counter(0));
        let again = as_participant(d.clone(), &h, &cfg, SpanId(0xabc));
        assert_eq!(again, d);
    }
}
