//! Property tests (proptest) prove that no parser and no decision panics on any input, that every
//! format round-trips, and that after the decision's edits the upstream gets exactly one context.
//!
//! - no input panics: b3::parse_multi, b3::parse_single, w3c::parse_traceparent,
//!   w3c::validate_tracestate, Config::parse, decision::decide in every mode over arbitrary
//!   header sets and configurations;
//! - round trips: context → format → parse gives the context back (B3 multi, B3 single, W3C), and
//!   bytes → parse → format → parse is stable (and for B3 single, byte-identical);
//! - decide()'s invariants: every value it writes is valid for its header; after its edits, every
//!   configured output parses and all of them agree with the decision and with each other; no
//!   format at all (read or not) is left malformed, contradicting, repeated or non-canonical.
//!
//! Cases per property: the numbers below (the file runs in a few seconds in `cargo test`), or
//! PROPTEST_CASES for all of them (`make fuzz` runs 200000).

use proptest::prelude::*;
use trace_inject::fixtures::{W3C_PARENT, W3C_TRACE};

use trace_inject::b3;
use trace_inject::config::{Config, TracerMode};
use trace_inject::context::{Format, Parsed, Sampling, TraceContext};
use trace_inject::decision::{self, Circumstances, Decision, Source};
use trace_inject::formats;
use trace_inject::headers::{self as h, MultiHeaders, TraceHeaders};
use trace_inject::hop::Hop;
use trace_inject::ids::{IdSource, SpanId, TraceId};
use trace_inject::settings::Settings;
use trace_inject::tracer::{Outcome, TracerKind};
use trace_inject::w3c;

#[path = "common/cases.rs"]
mod cases;
use cases::cases;

// ---------------------------------------------------------------------------------------------
// Input generators.

const HEX: &[u8] = b"0123456789abcdef";

fn hex(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(HEX), len)
}

/// Any bytes, biased to the ones that matter here.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(&b"0123456789abcdefABCDEF-,= \t\x00\xff"[..]),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..=max)
}

/// Something in the place of a trace or span id: valid 16/32 hex, all zeros, upper case, one
/// character off in length or alphabet, or anything.
fn id_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => hex(32),
        3 => hex(16),
        1 => Just(b"0".repeat(16)),
        1 => Just(b"0".repeat(32)),
        1 => hex(32).prop_map(|v| v.to_ascii_uppercase()),
        1 => (15usize..=17).prop_flat_map(hex),
        1 => (31usize..=33).prop_flat_map(hex),
        1 => (hex(16), 0usize..16, any::<u8>()).prop_map(|(mut v, i, b)| { v[i] = b; v }),
        1 => bytes(40),
    ]
}

fn sampling_token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            &b"0"[..],
            b"1",
            b"d",
            b"true",
            b"false",
            b"D",
            b"",
            b"2",
            b"01",
            b" 1"
        ])
        .prop_map(<[u8]>::to_vec),
        bytes(3),
    ]
}

/// A `b3` single value: 1–5 fields joined with '-', each an id, a sampling state or anything.
fn b3_single_like() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![3 => id_like(), 2 => sampling_token()];
    prop_oneof![
        4 => prop::collection::vec(field, 1..=5).prop_map(|f| f.join(&b'-')),
        1 => valid_context().prop_map(|c| b3::format_single(&c).into_bytes()),
        1 => bytes(80),
    ]
}

fn hex2_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => hex(2),
        1 => prop::sample::select(vec![&b"00"[..], b"01", b"ff", b"cc", b"0", b"GG", b"0A"])
            .prop_map(<[u8]>::to_vec),
        1 => bytes(3),
    ]
}

/// A `traceparent`: version-trace-parent-flags[-future], each part near-valid, or a valid one
/// with one byte changed, or anything.
fn traceparent_like() -> impl Strategy<Value = Vec<u8>> {
    let suffix = prop_oneof![
        4 => Just(Vec::new()),
        1 => Just(b"-".to_vec()),
        1 => Just(b"-future-fields".to_vec()),
        1 => bytes(8),
    ];
    let built =
        (hex2_like(), id_like(), id_like(), hex2_like(), suffix).prop_map(|(v, t, p, f, s)| {
            [v, b"-".to_vec(), t, b"-".to_vec(), p, b"-".to_vec(), f, s].concat()
        });
    let valid = valid_context().prop_map(|c| w3c::format_traceparent(&c).into_bytes());
    let mutated = (valid_context(), 0usize..55, any::<u8>()).prop_map(|(c, i, b)| {
        let mut v = w3c::format_traceparent(&c).into_bytes();
        v[i] = b;
        v
    });
    prop_oneof![4 => built, 2 => valid, 2 => mutated, 1 => bytes(70)]
}

/// A `tracestate`: list-members of near-valid keys and values, optional whitespace, or anything.
fn tracestate_like() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        prop::sample::select(vec![
            &b"rojo"[..],
            b"congo",
            b"a",
            b"t@v",
            b"0k_-*/@",
            b"Rojo",
            b""
        ])
        .prop_map(<[u8]>::to_vec),
        prop::collection::vec(prop::sample::select(&b"az09_-*/@A =,"[..]), 0..6),
    ];
    let value = prop_oneof![
        prop::sample::select(vec![
            &b"00f067aa0ba902b7"[..],
            b"x",
            b"a b",
            b" ",
            b"",
            b"="
        ])
        .prop_map(<[u8]>::to_vec),
        prop::collection::vec(prop_oneof![9 => 0x20u8..0x7f, 1 => any::<u8>()], 0..8),
    ];
    let ows = prop::sample::select(vec![&b""[..], b" ", b"\t", b"  "]).prop_map(<[u8]>::to_vec);
    let member = (ows.clone(), key, value, ows)
        .prop_map(|(a, k, v, b)| [a, k, b"=".to_vec(), v, b].concat());
    prop_oneof![
        4 => prop::collection::vec(member, 0..5).prop_map(|m| m.join(&b',')),
        1 => (1usize..40).prop_map(|n| (0..n).map(|i| format!("k{i}=v")).collect::<Vec<_>>()
            .join(",").into_bytes()),
        1 => bytes(40),
    ]
}

fn trace_id() -> impl Strategy<Value = TraceId> {
    prop_oneof![
        (1u128..=u128::MAX).prop_map(TraceId::new_128),
        (1u64..=u64::MAX).prop_map(|v| TraceId {
            value: u128::from(v),
            wide: false
        }),
        // Small 128-bit ids: hex with leading zeros.
        (1u128..=0xffff).prop_map(TraceId::new_128),
    ]
}

fn span_id() -> impl Strategy<Value = SpanId> {
    prop_oneof![
        (1u64..=u64::MAX).prop_map(SpanId),
        (1u64..=0xff).prop_map(SpanId)
    ]
}

fn sampling() -> impl Strategy<Value = Sampling> {
    prop::sample::select(vec![
        Sampling::Defer,
        Sampling::Deny,
        Sampling::Accept,
        Sampling::Debug,
    ])
}

fn valid_context() -> impl Strategy<Value = TraceContext> {
    (
        trace_id(),
        span_id(),
        prop::option::of(span_id()),
        sampling(),
        any::<bool>(),
    )
        .prop_map(
            |(trace_id, span_id, parent_span_id, sampling, random)| TraceContext {
                trace_id,
                span_id,
                parent_span_id,
                sampling,
                random,
            },
        )
}

/// The context headers and Envoy's request id.
const TRACE_HEADER_NAMES: [&str; 9] = {
    let c = h::CONTEXT_HEADERS;
    [
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        c[5],
        c[6],
        c[7],
        h::REQUEST_ID,
    ]
};

/// A header name: one the filter reads (in any letter case), a near miss, or another one.
fn header_name() -> impl Strategy<Value = String> {
    let known =
        (prop::sample::select(&TRACE_HEADER_NAMES[..]), any::<u16>()).prop_map(|(n, mask)| {
            n.chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask >> (i % 16) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        });
    let other = prop::sample::select(vec![
        ":authority",
        ":path",
        "x-b3-traceidx",
        "b33",
        "x-b3",
        "tracestat",
        "traceparent ",
        "",
        "user-agent",
        "x",
        "t",
        "B",
    ])
    .prop_map(str::to_string);
    prop_oneof![6 => known, 1 => other]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => id_like(),
        2 => sampling_token(),
        2 => b3_single_like(),
        2 => traceparent_like(),
        2 => tracestate_like(),
        1 => bytes(60),
    ]
}

/// Header lists print as text (bytes that are not UTF-8 as \u{fffd}, and their hex after).
#[derive(Clone)]
struct Headers(Vec<(String, Vec<u8>)>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for (n, v) in &self.0 {
            match std::str::from_utf8(v) {
                Ok(s) => l.entry(&format_args!("{n:?}: {s:?}")),
                Err(_) => l.entry(&format_args!(
                    "{n:?}: {:?} (bytes {v:02x?})",
                    String::from_utf8_lossy(v)
                )),
            };
        }
        l.finish()
    }
}

/// A request's headers: a coherent context in one or more formats (valid, or with a part
/// broken), or two different contexts in two formats (a conflict), plus arbitrary trace headers
/// — few, most of the time, so that valid and conflicting inputs stay common
/// (`generator_proportions` prints and bounds the shares).
fn header_set() -> impl Strategy<Value = Headers> {
    // B3 multi weighs double: its four headers are the easiest to spoil by a random extra.
    let pick = prop_oneof![2 => Just(0u8), 3 => 1u8..5];
    let coherent = (valid_context(), prop::collection::vec(pick, 0..4)).prop_map(|(c, picks)| {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for p in picks {
            push_format(&mut out, &c, p);
        }
        out
    });
    let conflicting =
        (valid_context(), valid_context(), 0u8..3, 1u8..3).prop_map(|(a, b, i, d)| {
            let mut out = Vec::new();
            push_format(&mut out, &a, i);
            push_format(&mut out, &b, (i + d) % 3);
            out
        });
    let base = prop_oneof![3 => coherent, 1 => conflicting];
    let random = prop_oneof![
        3 => prop::collection::vec((header_name(), header_value()), 0..2),
        2 => prop::collection::vec((header_name(), header_value()), 0..10),
    ];
    (base, random, any::<bool>()).prop_map(|(mut a, b, first)| {
        if first {
            a.extend(b);
            Headers(a)
        } else {
            let mut b = b;
            b.extend(a);
            Headers(b)
        }
    })
}

/// Writes `c` in format `pick`: 0 B3 multi, 1 b3, 2 traceparent, 3 a tracestate, 4 a bare
/// `x-b3-sampled: 0`.
fn push_format(out: &mut Vec<(String, Vec<u8>)>, c: &TraceContext, pick: u8) {
    match pick {
        0 => {
            for (n, v) in b3::format_multi(c) {
                if let Some(v) = v {
                    out.push((n.to_string(), v.into_bytes()));
                }
            }
        }
        1 => out.push(("b3".into(), b3::format_single(c).into_bytes())),
        2 => out.push((
            "traceparent".into(),
            w3c::format_traceparent(c).into_bytes(),
        )),
        3 => out.push(("tracestate".into(), b"rojo=00f067aa0ba902b7".to_vec())),
        _ => out.push(("x-b3-sampled".into(), b"0".to_vec())),
    }
}

// Validity by the specs' grammar, written here from the specs (not with the parsers under
// test), only to measure what the generator produces.

fn spec_hex(v: &[u8], lens: &[usize]) -> bool {
    lens.contains(&v.len())
        && v.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        && v.iter().any(|c| *c != b'0')
}

/// The values of header `name` (case-insensitive).
fn values<'a>(h: &'a Headers, name: &str) -> Vec<&'a [u8]> {
    h.0.iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .collect()
}

/// (trace id padded to 32, span id) of a valid B3 multi context: one x-b3-traceid (16/32
/// lower hex, not zero), one x-b3-spanid (16), any x-b3-sampled `0`/`1`, any parent 16 hex.
fn spec_b3_multi(h: &Headers) -> Option<(String, Vec<u8>)> {
    let (t, s) = (values(h, "x-b3-traceid"), values(h, "x-b3-spanid"));
    let (sampled, parent) = (values(h, "x-b3-sampled"), values(h, "x-b3-parentspanid"));
    let ok = t.len() == 1
        && s.len() == 1
        && spec_hex(t[0], &[16, 32])
        && spec_hex(s[0], &[16])
        && sampled.len() <= 1
        && sampled.iter().all(|v| *v == b"0" || *v == b"1")
        && parent.len() <= 1
        && parent.iter().all(|p| spec_hex(p, &[16]));
    ok.then(|| {
        (
            format!("{:0>32}", String::from_utf8_lossy(t[0])),
            s[0].to_vec(),
        )
    })
}

/// b3: `trace-span[-sampling[-parent]]`, sampling `0`/`1`/`d`.
fn spec_b3_single(h: &Headers) -> Option<(String, Vec<u8>)> {
    let v = values(h, "b3");
    if v.len() != 1 {
        return None;
    }
    let f: Vec<&[u8]> = v[0].split(|c| *c == b'-').collect();
    let ok = (2..=4).contains(&f.len())
        && spec_hex(f[0], &[16, 32])
        && spec_hex(f[1], &[16])
        && f.get(2).is_none_or(|x| matches!(*x, b"0" | b"1" | b"d"))
        && f.get(3).is_none_or(|p| spec_hex(p, &[16]));
    ok.then(|| {
        (
            format!("{:0>32}", String::from_utf8_lossy(f[0])),
            f[1].to_vec(),
        )
    })
}

/// traceparent version 00: `00-<32 hex>-<16 hex>-<2 hex>`, ids not zero.
fn spec_traceparent(h: &Headers) -> Option<(String, Vec<u8>)> {
    let v = values(h, "traceparent");
    if v.len() != 1 {
        return None;
    }
    let f: Vec<&[u8]> = v[0].split(|c| *c == b'-').collect();
    let ok = f.len() == 4
        && f[0] == b"00"
        && spec_hex(f[1], &[32])
        && spec_hex(f[2], &[16])
        && f[3].len() == 2
        && f[3]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    ok.then(|| (String::from_utf8_lossy(f[1]).into_owned(), f[2].to_vec()))
}

#[test]
fn generator_proportions() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = header_set();
    let n = 5_000;
    let (mut multi, mut single, mut tp, mut conflict) = (0, 0, 0, 0);
    for _ in 0..n {
        let h = strategy.new_tree(&mut runner).expect("a value").current();
        let found: Vec<(String, Vec<u8>)> =
            [spec_b3_multi(&h), spec_b3_single(&h), spec_traceparent(&h)]
                .into_iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    match (i, c.is_some()) {
                        (0, true) => multi += 1,
                        (1, true) => single += 1,
                        (2, true) => tp += 1,
                        _ => {}
                    }
                    c
                })
                .collect();
        if found.windows(2).any(|w| w[0] != w[1]) || (found.len() == 3 && found[0] != found[2]) {
            conflict += 1;
        }
    }
    let pct = |k: i32| f64::from(k) * 100.0 / f64::from(n);
    eprintln!(
        "header_set over {n} draws: valid B3 multi {:.1} %, valid b3 {:.1} %, valid traceparent {:.1} %, conflicting valid formats {:.1} %",
        pct(multi),
        pct(single),
        pct(tp),
        pct(conflict)
    );
    let export = export_json();
    let accepted = (0..n)
        .filter(|_| {
            let j = export.new_tree(&mut runner).expect("a value").current();
            Config::parse(j.as_bytes()).is_ok()
        })
        .count() as i32;
    eprintln!(
        "export_json over {n} draws: accepted {:.1} %",
        pct(accepted)
    );
    for (what, k, floor) in [
        ("accepted export sections", accepted, 10.0),
        ("B3 multi", multi, 20.0),
        ("b3", single, 20.0),
        ("traceparent", tp, 20.0),
        ("conflicts", conflict, 10.0),
    ] {
        assert!(
            pct(k) >= floor,
            "{what}: {:.1} % of draws, want >= {floor} %",
            pct(k)
        );
    }
}

/// A non-empty ordered subset of the formats, no repeats.
fn formats() -> impl Strategy<Value = Vec<Format>> {
    Just(Format::ALL.to_vec())
        .prop_shuffle()
        .prop_flat_map(|all| (Just(all), 1usize..=3))
        .prop_map(|(all, n)| all[..n].to_vec())
}

fn config() -> impl Strategy<Value = Config> {
    let percent = prop_oneof![Just(0.0), Just(100.0), 0.0f64..=100.0];
    (formats(), formats(), percent).prop_map(|(precedence, outputs, sampling_percent)| Config {
        precedence,
        outputs,
        sampling_percent: Some(sampling_percent),
        tracer: TracerMode::None,
        ..Config::default()
    })
}

/// Ids: the given values first (zeros included, which generation must skip), then splitmix64.
#[derive(Clone, Debug)]
struct Ids {
    given: Vec<u64>,
    state: u64,
}

impl IdSource for Ids {
    fn next_u64(&mut self) -> u64 {
        if let Some(v) = self.given.pop() {
            return v;
        }
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn ids() -> impl Strategy<Value = Ids> {
    (
        prop::collection::vec(prop_oneof![Just(0u64), Just(1), any::<u64>()], 0..4),
        any::<u64>(),
    )
        .prop_map(|(given, state)| Ids { given, state })
}

// ---------------------------------------------------------------------------------------------
// Helpers for the invariants.

fn pairs(h: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    h.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect()
}

/// Envoy's header map under the filter's edits: replace sets one value (removing every other
/// one of that name, case-insensitively), remove removes them all.
fn apply(headers: &[(String, Vec<u8>)], d: &Decision) -> Vec<(String, Vec<u8>)> {
    let mut out = headers.to_vec();
    for e in &d.edits {
        out.retain(|(n, _)| !n.eq_ignore_ascii_case(e.name));
        if let Some(v) = &e.value {
            out.push((e.name.to_string(), v.clone().into_bytes()));
        }
    }
    out
}

/// What one format says in a set of collected headers.
fn state(h: &TraceHeaders, f: Format) -> Parsed {
    formats::of(f).extract(h).parsed
}

/// Repeated, a future version or otherwise not as the filter would write it.
fn inexact(h: &TraceHeaders, f: Format) -> bool {
    let p = formats::of(f);
    p.present(h) && !p.extract(h).exact
}

/// A trusted caller on `hop`, no export.
fn on(hop: Hop) -> Circumstances {
    Circumstances {
        hop,
        exporting: false,
        trusted: true,
    }
}

fn plain(h: &TraceHeaders, cfg: &Config, ids: &Ids) -> Decision {
    decision::decide(
        h,
        &Settings::compile(cfg.clone(), false),
        on(Hop::Plain),
        &mut ids.clone(),
    )
}

/// Whether two formats' contexts say the same thing, within what both can express: trace id
/// (a 64-bit id equals its zero-padded form), span id and the sampled bit; between two B3
/// formats also the parent and the exact sampling state, except that B3 single has no place
/// for a parent when the decision is deferred.
fn consistent(a: (Format, &TraceContext), b: (Format, &TraceContext)) -> bool {
    let ((fa, ca), (fb, cb)) = (a, b);
    let base = ca.trace_id.value == cb.trace_id.value
        && ca.span_id == cb.span_id
        && ca.sampling.sampled() == cb.sampling.sampled();
    if fa == Format::W3c || fb == Format::W3c {
        return base;
    }
    let parent_ok = ca.parent_span_id == cb.parent_span_id
        || (ca.sampling == Sampling::Defer
            && ((fa == Format::B3Single && ca.parent_span_id.is_none())
                || (fb == Format::B3Single && cb.parent_span_id.is_none())));
    base && ca.sampling == cb.sampling && parent_ok
}

fn assert_valid_edit_value(name: &str, value: &str) {
    let v = value.as_bytes();
    let ok = match name {
        h::B3_TRACE_ID => TraceId::parse(v).is_some(),
        h::B3_SPAN_ID | h::B3_PARENT_SPAN_ID => SpanId::parse(v).is_some(),
        h::B3_SAMPLED => v == b"0" || v == b"1",
        h::B3_FLAGS => v == b"1",
        h::B3 => matches!(b3::parse_single(v), Parsed::Context(_)),
        h::TRACEPARENT => w3c::parse_traceparent(v).is_ok_and(|tp| tp.canonical),
        h::TRACESTATE => !v.is_empty() && w3c::validate_tracestate(v).is_ok(),
        _ => false,
    };
    assert!(
        ok,
        "decide wrote {name}: {value:?}, which is not a valid value for it"
    );
}

fn assert_valid_context(c: &TraceContext) {
    assert_ne!(c.trace_id.value, 0, "zero trace id: {c:?}");
    assert!(c.trace_id.wide || c.trace_id.value >> 64 == 0, "{c:?}");
    assert_ne!(c.span_id.0, 0, "zero span id: {c:?}");
    assert_ne!(c.parent_span_id, Some(SpanId(0)), "{c:?}");
}

fn check_decision(headers: &Headers, cfg: &Config, ids: &Ids) {
    let incoming = pairs(&headers.0);
    let h = TraceHeaders::collect(incoming.iter().copied());
    let d = plain(&h, cfg, ids);
    let again = plain(&h, cfg, ids);
    assert_eq!(d, again, "decide is deterministic for the same ids");

    // The decision itself.
    assert_valid_context(&d.context);
    assert_eq!(d.told_trace_id, Some(d.context.trace_id));
    let resp = d.context.trace_id.to_hex32();
    assert_eq!(
        TraceId::parse_128(resp.as_bytes()).map(|t| t.value),
        Some(d.context.trace_id.value)
    );
    let read = |f: Format| cfg.precedence.contains(&f);
    let incoming_state = |f: Format| {
        if read(f) {
            state(&h, f)
        } else {
            Parsed::Absent
        }
    };
    match d.source {
        Source::Injected | Source::Repaired => {
            assert_eq!(
                d.source == Source::Repaired,
                !d.malformed.is_empty(),
                "{d:?}"
            );
            assert!(
                cfg.precedence
                    .iter()
                    .all(|f| !matches!(incoming_state(*f), Parsed::Context(_))),
                "a valid incoming context was not used: {d:?}"
            );
        }
        s => {
            let f = match s {
                Source::B3Multi => Format::B3Multi,
                Source::B3Single => Format::B3Single,
                _ => Format::W3c,
            };
            // The winner's context goes on as it came, but for a deferred sampling decision,
            // which the filter makes (so that every format carries the same one): its own, or
            // that of another format at the same position (debug included).
            let Parsed::Context(came) = incoming_state(f) else {
                panic!("source {f:?} did not parse: input {headers:?}; {d:?}");
            };
            let want = if came.sampling == Sampling::Defer {
                assert_ne!(d.context.sampling, Sampling::Defer, "{d:?}");
                TraceContext {
                    sampling: d.context.sampling,
                    ..came
                }
            } else {
                came
            };
            assert_eq!(
                d.context, want,
                "input {headers:?}; precedence {:?}; {d:?}",
                cfg.precedence
            );
            // The first valid format in precedence wins.
            let first = cfg
                .precedence
                .iter()
                .find(|g| matches!(incoming_state(**g), Parsed::Context(_)));
            assert_eq!(first, Some(&f), "{d:?}");
        }
    }

    // `conflict` means valid formats disagreed: never with one valid format alone.
    let valid_formats = cfg
        .precedence
        .iter()
        .filter(|f| matches!(incoming_state(**f), Parsed::Context(_)))
        .count();
    if valid_formats <= 1 {
        assert!(
            !d.conflict,
            "conflict with {valid_formats} valid format(s): input {headers:?}; precedence {:?}; {d:?}",
            cfg.precedence
        );
    }

    // No edit forwards a malformed value (a rebuilt tracestate included).
    for e in &d.edits {
        assert!(
            TRACE_HEADER_NAMES.contains(&e.name) && e.name != "x-request-id",
            "edit of {:?}",
            e.name
        );
        if let Some(v) = &e.value {
            assert_valid_edit_value(e.name, v);
        }
    }

    // After the edits: every output says the decision's context, and they all agree.
    let final_headers = Headers(apply(&headers.0, &d));
    let fin = TraceHeaders::collect(pairs(&final_headers.0));
    let mut said: Vec<(Format, TraceContext)> = Vec::new();
    for f in Format::ALL {
        let st = state(&fin, f);
        if cfg.outputs.contains(&f) {
            let Parsed::Context(c) = st else {
                panic!("output {f:?} after the edits is {st:?}; decision {d:?}; final {final_headers:?}");
            };
            said.push((f, c));
        } else {
            // Any other format, read or not: gone, or saying the same thing, once. Nothing of
            // another trace, and no bare sampling decision, goes on beside the context.
            match st {
                Parsed::Absent => {}
                Parsed::Malformed(why) => {
                    panic!("{f:?} forwarded malformed ({why}); decision {d:?}; final {final_headers:?}")
                }
                Parsed::SamplingOnly(s) => panic!(
                    "{f:?} forwards a bare decision ({s:?}) beside the context; final {final_headers:?}"
                ),
                Parsed::Context(c) => said.push((f, c)),
            }
        }
        assert!(
            !inexact(&fin, f),
            "{f:?} still repeated or non-canonical after the edits: {final_headers:?}; decision {d:?}"
        );
    }
    // Against the decision: a generated context was written in full to every output, so it
    // compares like a B3 one.
    let decided = source_format(d.source).unwrap_or(Format::B3Multi);
    for (f, c) in &said {
        assert!(
            consistent((*f, c), (decided, &d.context)),
            "{f:?} says {c:?}, the decision ({decided:?}) is {:?}; input {headers:?}; \
             precedence {:?} outputs {:?}; final {final_headers:?}",
            d.context,
            cfg.precedence,
            cfg.outputs
        );
    }
    for (i, a) in said.iter().enumerate() {
        for b in &said[i + 1..] {
            assert!(
                consistent((a.0, &a.1), (b.0, &b.1)),
                "formats forwarded together disagree: {:?} says {:?}, {:?} says {:?}; \
                 input {headers:?}; config precedence {:?} outputs {:?}; final {final_headers:?}",
                a.0,
                a.1,
                b.0,
                b.1,
                cfg.precedence,
                cfg.outputs
            );
        }
    }

    // tracestate goes on only beside a valid traceparent of the trace it came with; byte for
    // byte where that traceparent went on unchanged, and only while valid where it was updated.
    if !fin.tracestate.is_empty() {
        let tp = fin.traceparent.map(w3c::parse_traceparent);
        assert!(
            matches!(tp, Some(Ok(tp)) if tp.context.trace_id.value == d.context.trace_id.value),
            "tracestate kept without its traceparent: input {headers:?}; precedence {:?} \
             outputs {:?}; final {final_headers:?}",
            cfg.precedence,
            cfg.outputs
        );
        let came_with = h.traceparent.map(w3c::parse_traceparent);
        assert!(
            matches!(came_with, Some(Ok(tp)) if tp.context.trace_id.value == d.context.trace_id.value),
            "tracestate of another trace (or of none) forwarded beside a new traceparent: input \
             {headers:?}; precedence {:?} outputs {:?}; final {final_headers:?}",
            cfg.precedence,
            cfg.outputs
        );
        if fin.traceparent != h.traceparent {
            assert!(w3c::validate_tracestate(&fin.tracestate.join(&b","[..])).is_ok());
        } else {
            assert_eq!(
                fin.tracestate, h.tracestate,
                "pass-through tracestate changed"
            );
        }
    }
}

fn source_format(s: Source) -> Option<Format> {
    match s {
        Source::B3Multi => Some(Format::B3Multi),
        Source::B3Single => Some(Format::B3Single),
        Source::W3c => Some(Format::W3c),
        Source::Injected | Source::Repaired => None,
    }
}

// ---------------------------------------------------------------------------------------------
// No panics, and what a parser accepts obeys its spec.

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn b3_single_never_panics_and_accepts_only_the_grammar(v in prop_oneof![b3_single_like(), bytes(120)]) {
        match b3::parse_single(&v) {
            Parsed::Context(c) => {
                assert_valid_context(&c);
                // The grammar, ids in either case (as Envoy and OpenTelemetry read them):
                // formatting gives back the very bytes, lower-cased.
                prop_assert_eq!(b3::format_single(&c).into_bytes(), v.to_ascii_lowercase());
                prop_assert_eq!(b3::read_single(&v).canonical, v == v.to_ascii_lowercase());
            }
            Parsed::SamplingOnly(_) => prop_assert!(v == b"0" || v == b"1" || v == b"d"),
            Parsed::Malformed(why) => prop_assert!(!why.is_empty()),
            Parsed::Absent => prop_assert!(false, "parse_single never says Absent"),
        }
    }

    #[test]
    fn b3_multi_never_panics(
        t in prop::option::of(id_like()),
        s in prop::option::of(id_like()),
        p in prop::option::of(id_like()),
        sampled in prop::option::of(sampling_token()),
        flags in prop::option::of(sampling_token()),
    ) {
        let h = MultiHeaders {
            trace_id: t.as_deref(),
            span_id: s.as_deref(),
            parent_span_id: p.as_deref(),
            sampled: sampled.as_deref(),
            flags: flags.as_deref(),
        };
        match b3::parse_multi(&h) {
            Parsed::Absent => prop_assert!(h.is_empty()),
            Parsed::Context(c) => {
                assert_valid_context(&c);
                // Round trip through the formatter.
                let m = b3::format_multi(&c);
                let get = |n: &str| m.iter().find(|(k, _)| *k == n).and_then(|(_, v)| v.as_deref()).map(str::as_bytes);
                let back = b3::parse_multi(&MultiHeaders {
                    trace_id: get(h::B3_TRACE_ID),
                    span_id: get(h::B3_SPAN_ID),
                    parent_span_id: get(h::B3_PARENT_SPAN_ID),
                    sampled: get(h::B3_SAMPLED),
                    flags: get(h::B3_FLAGS),
                });
                prop_assert_eq!(back, Parsed::Context(c));
            }
            Parsed::SamplingOnly(_) => prop_assert!(h.trace_id.is_none() && h.span_id.is_none() && h.parent_span_id.is_none()),
            Parsed::Malformed(_) => {}
        }
    }

    #[test]
    fn traceparent_never_panics_and_round_trips(v in prop_oneof![traceparent_like(), bytes(100)]) {
        if let Ok(tp) = w3c::parse_traceparent(&v) {
            assert_valid_context(&tp.context);
            prop_assert!(tp.context.trace_id.wide);
            prop_assert_eq!(tp.context.parent_span_id, None);
            prop_assert!(matches!(tp.context.sampling, Sampling::Accept | Sampling::Deny));
            let out = w3c::format_traceparent(&tp.context);
            let back = w3c::parse_traceparent(out.as_bytes());
            prop_assert_eq!(back.map(|b| (b.context, b.canonical)), Ok((tp.context, true)));
            // Version 00 with only the sampled flag (or none) comes back byte for byte.
            if tp.canonical && matches!(&v[53..55], b"00" | b"01") {
                prop_assert_eq!(out.into_bytes(), v);
            }
        }
    }

    #[test]
    fn tracestate_never_panics(v in prop_oneof![tracestate_like(), bytes(100)]) {
        if w3c::validate_tracestate(&v).is_ok() {
            // Every accepted member is key=value with a key by the grammar, and no key twice.
            let mut keys = Vec::new();
            for m in v.split(|&c| c == b',') {
                let m: Vec<u8> = m.iter().copied().skip_while(|c| *c == b' ' || *c == b'\t').collect();
                if m.iter().all(|c| *c == b' ' || *c == b'\t') { continue; }
                let key = m.split(|&c| c == b'=').next().unwrap_or_default().to_vec();
                prop_assert!(!key.is_empty() && m.contains(&b'='));
                prop_assert!(matches!(key[0], b'a'..=b'z' | b'0'..=b'9'));
                prop_assert!(!keys.contains(&key), "key twice accepted: {:?}", String::from_utf8_lossy(&v));
                keys.push(key);
            }
            prop_assert!(keys.len() <= 32);
        }
    }

    #[test]
    fn formats_round_trip_every_context(c in valid_context()) {
        // B3 single: a deferred decision has no place for the parent. B3 has no `random` flag.
        let single = b3::format_single(&c);
        let want = TraceContext {
            parent_span_id: if c.sampling == Sampling::Defer { None } else { c.parent_span_id },
            random: false,
            ..c
        };
        prop_assert_eq!(b3::parse_single(single.as_bytes()), Parsed::Context(want));
        // B3 multi: exact.
        let m = b3::format_multi(&c);
        let get = |n: &str| m.iter().find(|(k, _)| *k == n).and_then(|(_, v)| v.as_deref()).map(str::as_bytes);
        let back = b3::parse_multi(&MultiHeaders {
            trace_id: get(h::B3_TRACE_ID),
            span_id: get(h::B3_SPAN_ID),
            parent_span_id: get(h::B3_PARENT_SPAN_ID),
            sampled: get(h::B3_SAMPLED),
            flags: get(h::B3_FLAGS),
        });
        prop_assert_eq!(back, Parsed::Context(TraceContext { random: false, ..c }));
        // W3C: 128-bit, no parent, the sampled and random flags only.
        let tp = w3c::format_traceparent(&c);
        let back = w3c::parse_traceparent(tp.as_bytes());
        let want = TraceContext {
            trace_id: TraceId::new_128(c.trace_id.value),
            span_id: c.span_id,
            parent_span_id: None,
            sampling: if c.sampling.sampled() { Sampling::Accept } else { Sampling::Deny },
            random: c.random,
        };
        prop_assert_eq!(back.map(|t| (t.context, t.canonical)), Ok((want, true)));
        // Ids: the response header form.
        let r = c.trace_id.to_hex32();
        prop_assert_eq!(TraceId::parse_128(r.as_bytes()).map(|t| t.value), Some(c.trace_id.value));
        prop_assert_eq!(TraceId::parse(c.trace_id.to_b3().as_bytes()), Some(c.trace_id));
        prop_assert_eq!(SpanId::parse(c.span_id.to_hex().as_bytes()), Some(c.span_id));
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration.

/// JSON made of the configuration's own fields with values of every kind, valid or not.
fn config_json() -> impl Strategy<Value = String> {
    let fmt = prop::sample::select(vec![
        "\"b3\"",
        "\"b3-single\"",
        "\"w3c\"",
        "\"zipkin\"",
        "1",
        "null",
    ]);
    let fmt_list = prop::collection::vec(fmt, 0..5).prop_map(|v| format!("[{}]", v.join(",")));
    let scalar = prop::sample::select(vec![
        "null",
        "true",
        "0",
        "-1",
        "100",
        "100.0000001",
        "1e999",
        "-0",
        "12.5",
        "\"\"",
        "\" \"",
        "\"x-trace-id\"",
        "\"X-Trace\"",
        "\":status\"",
        "\"auto\"",
        "\"none\"",
        "\"envoy\"",
        "\"USE_B3\"",
        "\"USE_B3_WITH_W3C_PROPAGATION\"",
        "\"debug\"",
        "\"loud\"",
        "[]",
        "{}",
        "\"checkout\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
    ])
    .prop_map(str::to_string);
    let value = prop_oneof![scalar.clone(), fmt_list];
    let sub_key = prop::sample::select(vec![
        "enabled",
        "level",
        "include_query",
        "service",
        "namespace",
        "version",
        "workload",
        "cluster",
        "mesh",
        "pod",
        "colour",
    ]);
    let object = prop::collection::vec((sub_key, scalar), 0..4).prop_map(|kv| {
        let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    });
    let key = prop::sample::select(vec![
        "precedence",
        "outputs",
        "sampling_percent",
        "response_header",
        "tracer",
        "envoy_trace_context_option",
        "log",
        "workload",
        "sampling",
        "",
    ]);
    let member = (key, prop_oneof![3 => value, 2 => object]);
    prop::collection::vec(member, 0..6).prop_map(|kv| {
        let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

fn check_config(input: &[u8]) {
    match Config::parse(input) {
        Ok(c) => {
            let distinct =
                |l: &[Format]| l.iter().enumerate().all(|(i, f)| !l[i + 1..].contains(f));
            // `outputs` may be empty (an egress sends no context); `precedence` may not.
            assert!(!c.precedence.is_empty(), "{c:?}");
            assert!(distinct(&c.precedence) && distinct(&c.outputs), "{c:?}");
            if let Some(p) = c.sampling_percent {
                assert!((0.0..=100.0).contains(&p), "{c:?}");
            }
            if let Some(h) = &c.response_header {
                assert!(!h.is_empty() && !h.bytes().any(|b| b.is_ascii_uppercase() || b == b':'));
            }
        }
        Err(e) => {
            assert!(!e.reason.is_empty());
            let _ = e.to_string();
        }
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn config_never_panics_on_bytes(v in bytes(60)) {
        check_config(&v);
    }

    #[test]
    fn config_never_panics_on_near_valid_json(json in config_json()) {
        check_config(json.as_bytes());
        // An error names a field that is in the input (or none, for the whole document).
        if let Err(e) = Config::parse(json.as_bytes()) {
            let last = e.field.rsplit('.').next().unwrap_or_default();
            prop_assert!(
                e.field.is_empty() || json.contains(&format!("\"{last}\"")),
                "error names {:?}, not in {}", e.field, json
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The per-request decision.

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn decide_keeps_its_invariants(headers in header_set(), cfg in config(), ids in ids()) {
        check_decision(&headers, &cfg, &ids);
    }

    #[test]
    fn decide_with_the_default_config(headers in header_set(), ids in ids()) {
        check_decision(&headers, &Config::default(), &ids);
    }

    #[test]
    fn decide_for_a_tracer_hop_never_panics_nor_writes_bad_values(
        headers in header_set(),
        cfg in config(),
        ids in ids(),
        reads_w3c in any::<bool>(),
    ) {
        let incoming = pairs(&headers.0);
        let h = TraceHeaders::collect(incoming.iter().copied());
        let kind = TracerKind::Zipkin { reads_w3c };
        let settings = Settings::compile(cfg.clone(), false);
        let d = decision::decide(&h, &settings, on(Hop::Tracer(kind)), &mut ids.clone());
        assert_valid_context(&d.context);
        for e in &d.edits {
            if let Some(v) = &e.value {
                assert_valid_edit_value(e.name, v);
            }
        }
        // Where Envoy's tracer makes a span, its ids are the ones that flow: the filter only
        // removes, and reports the joined trace (or nothing, for a root it cannot know).
        let outcome = kind.predict(&h).outcome;
        if outcome != Outcome::NoSpan {
            // (A tracestate the tracer carries on with its traceparent may be rebuilt.)
            prop_assert!(
                d.edits.iter().all(|e| e.value.is_none() || e.name == h::TRACESTATE),
                "{:?}",
                d.edits
            );
            prop_assert_eq!(d.told_trace_id.map(|t| t.value), outcome.trace_id());
        }
    }

    /// While the hop is unknown the filter adds nothing of its own: every value it writes is the
    /// caller's own context (the winner) in canonical form, every format forwarded names that one
    /// position, and a trace id is told only where every tracer would join that trace or make
    /// no span.
    #[test]
    fn while_learning_only_the_callers_context_goes_on(
        headers in header_set(),
        cfg in config(),
        ids in ids(),
    ) {
        let incoming = pairs(&headers.0);
        let h = TraceHeaders::collect(incoming.iter().copied());
        let settings = Settings::compile(cfg.clone(), false);
        let d = decision::decide(&h, &settings, on(Hop::Unknown), &mut ids.clone());
        let states = formats::extract_all(&h);
        let winner = formats::first_context(&states, &settings.precedence).map(|(_, c)| c);
        for e in &d.edits {
            if let Some(v) = &e.value {
                assert_valid_edit_value(e.name, v);
            }
        }
        let forwarded: Vec<&TraceContext> = d.forwarded.iter().flatten().collect();
        for f in &forwarded {
            let w = winner.expect("nothing is forwarded without a caller's context");
            prop_assert!(f.same_position(&w), "{f:?} beside {w:?}");
        }
        if winner.is_none() {
            prop_assert!(d.edits.iter().all(|e| e.value.is_none()), "{:?}", d.edits);
        }
        // What goes on is told, and only that: the caller's context where every hop continues it.
        prop_assert_eq!(d.told_trace_id.is_some(), !forwarded.is_empty());
        if let Some(t) = d.told_trace_id {
            let w = winner.expect("told without a caller's context");
            prop_assert_eq!(t.value, w.trace_id.value);
            for kind in [
                TracerKind::Zipkin { reads_w3c: false },
                TracerKind::Zipkin { reads_w3c: true },
                TracerKind::OpenTelemetry,
            ] {
                let o = kind.predict(&h).outcome;
                prop_assert!(
                    o == Outcome::NoSpan || o.trace_id() == Some(t.value),
                    "{kind:?}: {o:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bugs the properties found (fixed), kept as plain regression tests.

fn run_default(headers: &[(&str, &str)], cfg: &Config) -> (Decision, Vec<(String, String)>) {
    let owned: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    let h = TraceHeaders::collect(pairs(&owned));
    let d = plain(
        &h,
        cfg,
        &Ids {
            given: vec![],
            state: 1,
        },
    );
    let fin = apply(&owned, &d)
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    (d, fin)
}

#[test]
fn regression_repeated_sampling_only_header_is_forwarded() {
    // `b3` is read (default precedence) but not written (default outputs): its first value is a
    // bare decision, so the second one, malformed, goes upstream untouched.
    let (_, fin) = run_default(&[("b3", "0"), ("b3", &"0".repeat(32))], &Config::default());
    let b3: Vec<&String> = fin
        .iter()
        .filter(|(n, _)| n == "b3")
        .map(|(_, v)| v)
        .collect();
    assert!(b3.len() <= 1, "repeated b3 forwarded: {b3:?}");
}

#[test]
fn regression_deferred_sampling_counts_as_a_conflict() {
    // One valid format, no sampling decision: the filter decides it, and calls that a conflict
    // (the `trace_inject.conflicts` counter goes up on every such request).
    let (d, _) = run_default(
        &[("x-b3-traceid", W3C_TRACE), ("x-b3-spanid", W3C_PARENT)],
        &Config::default(),
    );
    assert_eq!(d.source, Source::B3Multi);
    assert!(!d.conflict, "{d:?}");
}

#[test]
fn regression_tracestate_kept_beside_a_new_traceparent() {
    // `w3c` written but not read: traceparent is replaced by a new trace, its tracestate stays.
    let cfg = Config {
        precedence: vec![Format::B3Single, Format::B3Multi],
        ..Config::default()
    };
    let (d, fin) = run_default(
        &[
            ("traceparent", &format!("00-{W3C_TRACE}-{W3C_PARENT}-01")),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
        &cfg,
    );
    assert_eq!(d.source, Source::Injected);
    assert!(
        !fin.iter().any(|(n, _)| n == "tracestate"),
        "tracestate forwarded: {fin:?}"
    );
}

#[test]
fn regression_b3_formats_disagree_when_w3c_wins() {
    // W3C first; its flags say not sampled. The incoming `b3` (same ids, no decision) is left as
    // it came, while `x-b3-sampled: 0` is written: upstream, b3 says "you decide", x-b3-* "no".
    let cfg = Config {
        precedence: vec![Format::W3c, Format::B3Single, Format::B3Multi],
        ..Config::default()
    };
    let (d, fin) = run_default(
        &[
            ("traceparent", &format!("00-{W3C_TRACE}-{W3C_PARENT}-00")),
            ("b3", &format!("{W3C_TRACE}-{W3C_PARENT}")),
        ],
        &cfg,
    );
    assert_eq!(d.source, Source::W3c);
    let get = |n: &str| fin.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("x-b3-sampled"), Some("0"));
    let denied = format!("{W3C_TRACE}-{W3C_PARENT}-0");
    assert!(
        get("b3").is_none_or(|v| v == denied),
        "b3 and x-b3-* disagree: {fin:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Export sections: near-valid values for every field; what is accepted is usable.

/// Mostly one of `good`, sometimes one of `bad`: so that about 40 % of the sections are
/// accepted (`generator_proportions` bounds the share) and each field's refusals still occur.
fn good_or_bad(good: Vec<&'static str>, bad: Vec<&'static str>) -> impl Strategy<Value = String> {
    prop_oneof![
        9 => prop::sample::select(good).prop_map(str::to_string),
        1 => prop::sample::select(bad).prop_map(str::to_string),
    ]
}

fn export_json() -> impl Strategy<Value = String> {
    let cluster = good_or_bad(
        vec![
            "\"zipkin\"",
            "\"outbound|9411||zipkin.istio-system.svc.cluster.local\"",
            "\"outbound|4318||otel-collector.observability.svc.cluster.local\"",
            "\"outbound|9411|v1|zipkin\"",
        ],
        vec!["\"a b\"", "\"\"", "\" \"", "\"x|y\"", "1", "null"],
    );
    let protocol = good_or_bad(
        vec!["\"zipkin\"", "\"otlp\""],
        vec!["\"jaeger\"", "\"OTLP\"", "null"],
    );
    let path = good_or_bad(
        vec!["\"/api/v2/spans\"", "\"/v1/traces\"", "\"/\"", "null"],
        vec!["\"api\"", "\"/a b\"", "\"\"", "\"/\\u0000\""],
    );
    let authority = good_or_bad(
        vec![
            "\"zipkin\"",
            "\"zipkin.istio-system:9411\"",
            "\"[::1]:9411\"",
            "\"10.0.0.1\"",
            "null",
        ],
        vec!["\"a|b\"", "\"host:99999\"", "\"\"", "\"h h\""],
    );
    let service = good_or_bad(vec!["\"edge\"", "null"], vec!["\"\"", "\" \""]);
    let number = prop_oneof![
        6 => prop::sample::select(vec!["10", "100", "1000", "10000", "16384", "600000", "268435456"])
            .prop_map(str::to_string),
        1 => prop::sample::select(vec!["0", "1", "9", "10001", "600001", "268435457", "-1", "1.5", "\"5\"", "null", "1e20"])
            .prop_map(str::to_string),
        1 => (0u64..2_000_000).prop_map(|n| n.to_string()),
    ];
    let fields = (
        prop_oneof![9 => cluster.prop_map(Some), 1 => Just(None)],
        prop::option::of(protocol),
        prop::option::of(path),
        prop::option::of(authority),
        prop::option::of(service),
        prop::collection::vec(
            (
                prop_oneof![
                    19 => prop::sample::select(vec![
                        "batch_size",
                        "flush_interval_ms",
                        "buffer_limit",
                        "buffer_bytes",
                        "timeout_ms",
                    ]),
                    1 => Just("colour"),
                ],
                number,
            ),
            0..3,
        ),
    );
    fields.prop_map(|(c, p, path, a, svc, nums)| {
        let mut f: Vec<String> = Vec::new();
        for (k, v) in [
            ("cluster", c),
            ("protocol", p),
            ("path", path),
            ("authority", a),
            ("service_name", svc),
        ] {
            if let Some(v) = v {
                f.push(format!("\"{k}\": {v}"));
            }
        }
        for (k, v) in nums {
            f.push(format!("\"{k}\": {v}"));
        }
        format!("{{\"export\": {{{}}}}}", f.join(", "))
    })
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Config::parse never panics on an export section; one it accepts compiles into settings
    /// and an exporter, with the limits the README gives (checked here, not taken from the code).
    #[test]
    fn export_sections_parse_without_panic_and_accepted_ones_compile(json in export_json()) {
        match Config::parse(json.as_bytes()) {
            Ok(c) => {
                let e = c.export.clone().expect("an accepted export section is kept");
                prop_assert!(!e.cluster.trim().is_empty(), "{json}");
                prop_assert!((1..=10_000).contains(&e.batch_size), "{json}");
                prop_assert!((10..=600_000).contains(&e.flush_interval_ms), "{json}");
                prop_assert!((1..=1_000_000).contains(&e.buffer_limit), "{json}");
                prop_assert!(((16 << 10)..=(256 << 20)).contains(&e.buffer_bytes), "{json}");
                prop_assert!((10..=600_000).contains(&e.timeout_ms), "{json}");
                let path = e.resolved_path();
                prop_assert!(path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic()), "{json}");
                // A Host header a Go server accepts: no space, no '|', no empty name.
                let host = e.resolved_authority();
                prop_assert!(
                    !host.is_empty() && !host.contains(' ') && !host.contains('|'),
                    "{json}: authority {host:?}"
                );
                let settings = Settings::compile(c, false);
                let node = trace_inject::workload::NodeInfo::default();
                let workload = trace_inject::workload::Workload::resolve(&node, &Default::default());
                let _exporter = trace_inject::export::Exporter::new(e, &workload, &node);
                drop(settings);
            }
            Err(err) => {
                prop_assert!(!err.reason.is_empty());
                prop_assert!(err.field.starts_with("export") || err.field.is_empty(), "{json}: {err}");
            }
        }
    }
}
