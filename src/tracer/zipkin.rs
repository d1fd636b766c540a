//! Envoy's Zipkin tracer (`envoy.tracers.zipkin`), as measured on Envoy 1.40 (docs/tracers.md, "How it
//! works with Envoy's tracer"):
//!
//! - `b3` present: it alone is read (`x-b3-*` ignored); one character is a sampling decision (a
//!   new root); a malformed value makes no span. The router writes the context back as `b3`.
//! - else `x-b3-traceid` and `x-b3-spanid` both present: parsed leniently (`strtoull`, base 16:
//!   upper case, a `0x` prefix, fewer than 16 digits are accepted; exactly 32 characters are two
//!   halves); unparseable ids or parent id make no span. The router writes `x-b3-*`.
//! - else, with `trace_context_option: USE_B3_WITH_W3C_PROPAGATION`, a `traceparent` is joined.
//! - else a new root trace, whose id nobody outside Envoy knows before the response.

use super::{Outcome, Prediction};
use crate::context::{Format, FormatSet};
use crate::headers::TraceHeaders;

pub fn predict(h: &TraceHeaders, reads_w3c: bool) -> Prediction {
    let outcome = match (h.b3_single, h.b3.trace_id, h.b3.span_id) {
        (Some(b3), _, _) => single(b3),
        (None, Some(t), Some(s)) => multi(t, s, h.b3.parent_span_id),
        _ => match h.traceparent.filter(|_| reads_w3c).and_then(traceparent) {
            Some(joined) => joined,
            None => Outcome::NewRoot,
        },
    };
    // The router writes the context back as `b3` where one came in (Envoy 1.40; 1.36-1.39 write
    // `x-b3-*` then: the filter removes both forms, see `decision::beside_tracer`), else as
    // `x-b3-*`; with W3C propagation also as `traceparent`.
    let b3 = if h.b3_single.is_some() {
        Format::B3Single
    } else {
        Format::B3Multi
    };
    let writes = match outcome {
        Outcome::NoSpan => FormatSet::EMPTY,
        _ if reads_w3c => FormatSet::of(&[b3, Format::W3c]),
        _ => FormatSet::of(&[b3]),
    };
    Prediction { outcome, writes }
}

fn join(high: u64, low: u64) -> Outcome {
    Outcome::Join((u128::from(high) << 64) | u128::from(low))
}

/// `StringUtil::atoull(s, out, 16)`: strtoull accepting the whole string, no overflow.
fn atoull_hex(s: &[u8]) -> Option<u64> {
    let digits = match s {
        [b'0', b'x' | b'X', rest @ ..] => rest,
        _ => s,
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(16)?;
        v = v.checked_mul(16)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

fn trace_id(t: &[u8]) -> Option<(u64, u64)> {
    if t.len() == 32 {
        Some((atoull_hex(t.get(..16)?)?, atoull_hex(t.get(16..)?)?))
    } else {
        Some((0, atoull_hex(t)?))
    }
}

fn multi(t: &[u8], s: &[u8], parent: Option<&[u8]>) -> Outcome {
    let ids = trace_id(t).zip(atoull_hex(s));
    let parent_ok = match parent {
        None | Some(b"") => true,
        Some(p) => atoull_hex(p).is_some(),
    };
    match ids {
        Some(((high, low), _)) if parent_ok => join(high, low),
        _ => Outcome::NoSpan,
    }
}

fn single(v: &[u8]) -> Outcome {
    if v.len() == 1 {
        return if matches!(v, b"0" | b"1" | b"d") {
            Outcome::NewRoot
        } else {
            Outcome::NoSpan
        };
    }
    let mut f = v.split(|&c| c == b'-');
    let (Some(t), Some(s), flag, parent, None) = (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Outcome::NoSpan;
    };
    let hex_len = |x: &[u8], n: usize| x.len() == n && x.iter().all(u8::is_ascii_hexdigit);
    let ok = (hex_len(t, 16) || hex_len(t, 32))
        && hex_len(s, 16)
        && flag.is_none_or(|f| matches!(f, b"0" | b"1" | b"d"))
        && parent.is_none_or(|p| hex_len(p, 16));
    match (ok, trace_id(t)) {
        (true, Some((high, low))) => join(high, low),
        _ => Outcome::NoSpan,
    }
}

/// Envoy's W3C extraction is laxer than the spec (upper case, version `ff` accepted) but refuses
/// zero ids and wrong lengths.
fn traceparent(v: &[u8]) -> Option<Outcome> {
    let mut f = v.split(|&c| c == b'-');
    let (Some(ver), Some(t), Some(p), Some(flags), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return None;
    };
    let hex_len = |x: &[u8], n: usize| x.len() == n && x.iter().all(u8::is_ascii_hexdigit);
    if !(hex_len(ver, 2) && hex_len(t, 32) && hex_len(p, 16) && hex_len(flags, 2)) {
        return None;
    }
    let (high, low) = trace_id(t)?;
    if (high == 0 && low == 0) || atoull_hex(p)? == 0 {
        return None;
    }
    Some(join(high, low))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::{headers as h, S, T32 as T};

    // Each row is a measurement on Envoy 1.40 (docs/tracers.md, docs/b3-leniency.md).
    #[test]
    fn matches_what_envoy_was_measured_to_do() {
        let t = join(0x463ac35c9f6413ad, 0x48485a3953bb6124);
        let cases: &[(&[(&str, &str)], Outcome)] = &[
            (&[], Outcome::NewRoot),
            (&[("x-b3-traceid", T), ("x-b3-spanid", S)], t),
            (
                &[("x-b3-traceid", "463ac35c9f6413ad"), ("x-b3-spanid", S)],
                join(0, 0x463ac35c9f6413ad),
            ),
            (&[("x-b3-traceid", T)], Outcome::NewRoot),
            (&[("x-b3-spanid", S)], Outcome::NewRoot),
            (
                &[
                    ("x-b3-traceid", "463AC35C9F6413AD48485A3953BB6124"),
                    ("x-b3-spanid", S),
                ],
                t,
            ),
            (
                &[("x-b3-traceid", "463ac35c9f6413a"), ("x-b3-spanid", S)],
                join(0, 0x463ac35c9f6413a),
            ),
            (&[("x-b3-traceid", "5"), ("x-b3-spanid", S)], join(0, 5)),
            (
                &[("x-b3-traceid", "0x463ac35c9f6413"), ("x-b3-spanid", S)],
                join(0, 0x463ac35c9f6413),
            ),
            (
                &[("x-b3-traceid", "463ac35c9f6413ad4"), ("x-b3-spanid", S)],
                Outcome::NoSpan,
            ),
            (
                &[("x-b3-traceid", &T[..31]), ("x-b3-spanid", S)],
                Outcome::NoSpan,
            ),
            (
                &[
                    ("x-b3-traceid", "xyzac35c9f6413ad48485a3953bb6124"),
                    ("x-b3-spanid", S),
                ],
                Outcome::NoSpan,
            ),
            (
                &[
                    ("x-b3-traceid", "00000000000000000000000000000000"),
                    ("x-b3-spanid", S),
                ],
                join(0, 0),
            ),
            (
                &[("x-b3-traceid", T), ("x-b3-spanid", "a2fb4a1d1a96d3121")],
                Outcome::NoSpan,
            ),
            (
                &[
                    ("x-b3-traceid", T),
                    ("x-b3-spanid", S),
                    ("x-b3-parentspanid", "nothex!!"),
                ],
                Outcome::NoSpan,
            ),
            (&[("b3", &format!("{T}-{S}-1"))], t),
            (&[("b3", "0")], Outcome::NewRoot),
            (&[("b3", "d")], Outcome::NewRoot),
            (&[("b3", "abc")], Outcome::NoSpan),
            (&[("b3", T)], Outcome::NoSpan),
            (&[("b3", &format!("{T}-{S}-x"))], Outcome::NoSpan),
            (
                &[("b3", "0"), ("x-b3-traceid", T), ("x-b3-spanid", S)],
                Outcome::NewRoot,
            ),
            (
                &[("b3", "abc"), ("x-b3-traceid", T), ("x-b3-spanid", S)],
                Outcome::NoSpan,
            ),
            (
                &[(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )],
                Outcome::NewRoot,
            ),
        ];
        for (headers, want) in cases {
            assert_eq!(predict(&h(headers), false).outcome, *want, "{headers:?}");
        }
        let writes = |headers: &[(&str, &str)], w3c| predict(&h(headers), w3c).writes;
        assert_eq!(
            writes(&[("b3", "0")], false),
            FormatSet::of(&[Format::B3Single])
        );
        assert_eq!(writes(&[], false), FormatSet::of(&[Format::B3Multi]));
        assert_eq!(
            writes(&[], true),
            FormatSet::of(&[Format::B3Multi, Format::W3c])
        );
        assert_eq!(writes(&[("b3", "abc")], true), FormatSet::EMPTY);
    }

    #[test]
    fn with_w3c_propagation_a_traceparent_is_joined_when_b3_is_incomplete() {
        let tp = join(0x4bf92f3577b34da6, 0xa3ce929d0e0e4736);
        let cases: &[(&[(&str, &str)], Outcome)] = &[
            (
                &[(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )],
                tp,
            ),
            (
                &[(
                    "traceparent",
                    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )],
                tp,
            ),
            (
                &[(
                    "traceparent",
                    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                )],
                tp,
            ),
            (
                &[(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                )],
                Outcome::NewRoot,
            ),
            (
                &[(
                    "traceparent",
                    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                )],
                Outcome::NewRoot,
            ),
            (
                &[(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
                )],
                Outcome::NewRoot,
            ),
            (
                &[
                    (
                        "traceparent",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    ),
                    ("x-b3-traceid", T),
                ],
                tp,
            ),
            (
                &[
                    (
                        "traceparent",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    ),
                    ("b3", "1"),
                ],
                Outcome::NewRoot,
            ),
            (
                &[
                    (
                        "traceparent",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    ),
                    ("x-b3-traceid", T),
                    ("x-b3-spanid", S),
                ],
                join(0x463ac35c9f6413ad, 0x48485a3953bb6124),
            ),
        ];
        for (headers, want) in cases {
            assert_eq!(predict(&h(headers), true).outcome, *want, "{headers:?}");
        }
    }

    #[test]
    fn an_all_zero_join_has_no_reportable_id() {
        assert_eq!(join(0, 0).trace_id(), None);
        assert_eq!(join(0, 5).trace_id(), Some(5));
    }

    // Mutation testing (make mutants) found these rows untested.
    #[test]
    fn both_halves_of_a_128_bit_id_are_joined() {
        // `|` and `^` agree here (the halves never overlap): the mutant `| -> ^` in `join` is
        // equivalent; this pins the halves' places instead.
        assert_eq!(join(1, 2).trace_id(), Some((1u128 << 64) + 2));
        assert_eq!(
            join(u64::MAX, 0).trace_id(),
            Some(u128::from(u64::MAX) << 64)
        );
    }

    #[test]
    fn each_b3_and_traceparent_field_needs_both_its_length_and_hex() {
        // A field of the right length but not hex, or hex of the wrong length: no span (b3) or
        // not joined (traceparent), where the later id parse would not catch it.
        for b3 in [
            format!("{T}-zzzzzzzzzzzzzzzz-1"),
            format!("{T}-{S}1-1"),
            format!("{T}-{S}-1-zzzzzzzzzzzzzzzz"),
            format!("{T}-{S}-1-{S}1"),
        ] {
            assert_eq!(single(b3.as_bytes()), Outcome::NoSpan, "{b3}");
        }
        for tp in [
            format!("zz-{T}-{S}-01"),
            format!("000-{T}-{S}-01"),
            format!("00-{T}-{S}-zz"),
            format!("00-{T}-{S}-010"),
        ] {
            assert_eq!(traceparent(tp.as_bytes()), None, "{tp}");
        }
        assert!(traceparent(format!("00-{T}-{S}-01").as_bytes()).is_some());
    }

    #[test]
    fn a_trace_id_with_a_zero_high_half_is_joined() {
        let tp = format!("00-0000000000000000{}-{S}-01", &T[16..]);
        assert_eq!(
            traceparent(tp.as_bytes()),
            Some(join(0, 0x48485a3953bb6124))
        );
        let zero = format!("00-{}-{S}-01", "0".repeat(32));
        assert_eq!(traceparent(zero.as_bytes()), None);
    }
}
