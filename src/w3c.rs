//! W3C Trace Context: `traceparent` and `tracestate`.

use crate::context::{Format, Parsed, Sampling, TraceContext};
use crate::headers::{Edit, TraceHeaders, TRACEPARENT, TRACESTATE};
use crate::ids::{parse_lower_hex, SpanId, TraceId};
use crate::propagator::{Extracted, Propagator};

/// `sampled` and (Level 2) `random`: the only trace-flags with a meaning; writers zero the rest.
const FLAG_SAMPLED: u128 = 0x01;
const FLAG_RANDOM: u128 = 0x02;

/// W3C Trace Context: `traceparent`, and `tracestate` beside it (see `tracestate_edit`).
pub struct W3c;

impl Propagator for W3c {
    fn format(&self) -> Format {
        Format::W3c
    }

    fn fields(&self) -> &'static [&'static str] {
        &[TRACEPARENT, TRACESTATE]
    }

    fn present(&self, h: &TraceHeaders) -> bool {
        h.traceparent.is_some()
    }

    fn extract(&self, h: &TraceHeaders) -> Extracted {
        match h.traceparent {
            None => Extracted::ABSENT,
            // Which of two would be the right one is unknowable: the spec's "invalid".
            Some(_) if h.traceparent_repeated => Extracted {
                parsed: Parsed::Malformed("traceparent appears more than once"),
                exact: false,
            },
            Some(v) => match parse_traceparent(v) {
                Ok(tp) => Extracted {
                    parsed: Parsed::Context(tp.context),
                    exact: tp.canonical,
                },
                Err(why) => Extracted {
                    parsed: Parsed::Malformed(why),
                    exact: false,
                },
            },
        }
    }

    fn carries_all(&self) -> bool {
        false
    }

    fn inject(&self, ctx: &TraceContext, _h: &TraceHeaders, edits: &mut Vec<Edit>) {
        edits.push(Edit::set(TRACEPARENT, format_traceparent(ctx)));
    }

    fn remove(&self, h: &TraceHeaders, edits: &mut Vec<Edit>) {
        if h.traceparent.is_some() {
            edits.push(Edit::remove(TRACEPARENT));
        }
    }
}

/// What became of the incoming `traceparent`, which decides what becomes of its `tracestate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceparentFate {
    /// Forwarded as it came.
    Unchanged,
    /// Rewritten, same trace (a new parent-id, a downgraded version, a normalised value).
    Updated,
    /// Removed, or rewritten to another trace.
    Replaced,
}

/// `tracestate` belongs to the `traceparent` it came with (Recommendation §3.3): it goes on
/// byte for byte while that `traceparent` does, goes with it when it is replaced, and, where it
/// was updated, only while its list is valid. Returns the edit, with the reason when the
/// tracestate itself was malformed.
pub fn tracestate_edit(
    h: &TraceHeaders,
    fate: TraceparentFate,
) -> Option<(Edit, Option<&'static str>)> {
    if h.tracestate.is_empty() {
        return None;
    }
    match fate {
        // "If the value of the traceparent field wasn't changed before propagation, tracestate
        // MUST NOT be modified as well."
        TraceparentFate::Unchanged => None,
        TraceparentFate::Replaced => Some((Edit::remove(TRACESTATE), None)),
        TraceparentFate::Updated => {
            let combined = h.tracestate.join(&b","[..]);
            match validate_tracestate(&combined) {
                Ok(()) => None,
                Err(why) => Some((Edit::remove(TRACESTATE), Some(why))),
            }
        }
    }
}

const V00_LEN: usize = 55;
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A parsed `traceparent`. `canonical` is false when the value must be rewritten before it is
/// forwarded (a higher version is downgraded to `00`, as the spec requires).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traceparent {
    pub context: TraceContext,
    pub canonical: bool,
}

/// Parses a `traceparent` value: version `00` exactly; a higher version by the spec's
/// forward-compatibility rule; version `ff` and anything else invalid.
pub fn parse_traceparent(v: &[u8]) -> Result<Traceparent, &'static str> {
    let (Some(version), Some(b'-')) = (v.get(0..2), v.get(2)) else {
        return Err("traceparent version is not 2 hex followed by '-'");
    };
    let Some(version) = parse_lower_hex(version) else {
        return Err("traceparent version is not lower-hex");
    };
    if version == 0xff {
        return Err("traceparent version ff is forbidden");
    }
    if version == 0 && v.len() != V00_LEN {
        return Err("traceparent version 00 is not exactly 55 characters");
    }
    if v.len() < V00_LEN {
        return Err("traceparent is shorter than 55 characters");
    }
    // Fixed positions: version(2) - trace-id(32) - parent-id(16) - flags(2) [- future fields].
    let trace = v.get(3..35).unwrap_or_default();
    let parent = v.get(36..52).unwrap_or_default();
    let flags = v.get(53..55).unwrap_or_default();
    if v.get(35) != Some(&b'-') || v.get(52) != Some(&b'-') {
        return Err("traceparent fields are not separated by '-'");
    }
    if version != 0 && !matches!(v.get(55), None | Some(b'-')) {
        return Err("traceparent flags are not followed by '-' or the end");
    }
    let Some(trace_id) = TraceId::parse_128(trace) else {
        return Err("traceparent trace-id is not 32 lower-hex, non-zero");
    };
    let Some(span_id) = SpanId::parse(parent) else {
        return Err("traceparent parent-id is not 16 lower-hex, non-zero");
    };
    let Some(flags) = parse_lower_hex(flags) else {
        return Err("traceparent trace-flags is not 2 lower-hex");
    };
    Ok(Traceparent {
        context: TraceContext {
            trace_id,
            span_id,
            parent_span_id: None,
            sampling: if flags & FLAG_SAMPLED != 0 {
                Sampling::Accept
            } else {
                Sampling::Deny
            },
            random: flags & FLAG_RANDOM != 0,
        },
        canonical: version == 0,
    })
}

/// `traceparent` for `ctx`, version 00. A 64-bit trace id is left-padded with zeros; the
/// parent-id is the caller's span id; trace-flags carry `sampled` and Level 2's `random` (the
/// other bits are not defined: writers set them to zero).
pub fn format_traceparent(ctx: &TraceContext) -> String {
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    ctx.trace_id.push_hex32(&mut out);
    out.push('-');
    ctx.span_id.push_hex(&mut out);
    out.push_str(match (ctx.sampling.sampled(), ctx.random) {
        (false, false) => "-00",
        (true, false) => "-01",
        (false, true) => "-02",
        (true, true) => "-03",
    });
    out
}

/// Validates a combined `tracestate` value (several headers joined with ','): at most 32
/// list-members, each `key=value` by the spec's grammar, no key twice; empty members allowed.
pub fn validate_tracestate(v: &[u8]) -> Result<(), &'static str> {
    let mut keys: Vec<&[u8]> = Vec::new();
    for member in v.split(|&c| c == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        if keys.len() == MAX_TRACESTATE_MEMBERS {
            return Err("tracestate has more than 32 list-members");
        }
        let mut kv = member.splitn(2, |&c| c == b'=');
        let (Some(key), Some(value)) = (kv.next(), kv.next()) else {
            return Err("tracestate list-member has no '='");
        };
        if !valid_key(key) {
            return Err("tracestate key is invalid");
        }
        if !valid_value(value) {
            return Err("tracestate value is invalid");
        }
        if keys.contains(&key) {
            return Err("tracestate key appears twice");
        }
        keys.push(key);
    }
    Ok(())
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

// key = ( lcalpha / DIGIT ) 0*255 ( keychar ); keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
fn valid_key(k: &[u8]) -> bool {
    match k {
        [first, rest @ ..] if k.len() <= 256 => {
            matches!(first, b'a'..=b'z' | b'0'..=b'9')
                && rest.iter().all(
                    |c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@'),
                )
        }
        _ => false,
    }
}

// value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
fn valid_value(v: &[u8]) -> bool {
    let nblk = |c: &u8| matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    match v {
        [init @ .., last] if v.len() <= 256 => {
            nblk(last) && init.iter().all(|c| *c == 0x20 || nblk(c))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn version_00() {
        let tp = parse_traceparent(TP).unwrap();
        assert!(tp.canonical);
        assert_eq!(
            tp.context.trace_id.to_hex32(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(tp.context.span_id.to_hex(), "00f067aa0ba902b7");
        assert_eq!(tp.context.sampling, Sampling::Accept);
        assert_eq!(format_traceparent(&tp.context).as_bytes(), TP);
        let tp =
            parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert_eq!(tp.context.sampling, Sampling::Deny);
        // Flags are a bit field: 09 has the sampled bit set.
        let tp =
            parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09").unwrap();
        assert_eq!(tp.context.sampling, Sampling::Accept);
    }

    #[test]
    fn higher_versions_by_the_forward_compatibility_rule() {
        let tp =
            parse_traceparent(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert!(!tp.canonical);
        let tp = parse_traceparent(
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
        )
        .unwrap();
        assert_eq!(tp.context.span_id.to_hex(), "00f067aa0ba902b7");
        for bad in [
            &b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01."[..],
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(parse_traceparent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn invalid_traceparents() {
        for bad in [
            &b""[..],
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"GG-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01,00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"\xff\xfe",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736\x00-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn tracestate_grammar() {
        for ok in [
            &b""[..],
            b"rojo=00f067aa0ba902b7",
            b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            b"rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE,,\t",
            b"tenant@vendor=x",
            b"a=  leading spaces kept",
            b"0key_-*/@=~!",
        ] {
            assert!(
                validate_tracestate(ok).is_ok(),
                "{:?}",
                String::from_utf8_lossy(ok)
            );
        }
        for bad in [
            &b"rojo"[..],
            b"Rojo=x",
            b"_rojo=x",
            b"rojo=",
            b"rojo=a=b",
            b"rojo=x,rojo=y",
            b"rojo=caf\xc3\xa9",
            b"rojo=tab\there",
            b"ro jo=x",
        ] {
            assert!(
                validate_tracestate(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert!(validate_tracestate(members.join(",").as_bytes()).is_ok());
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(validate_tracestate(members.join(",").as_bytes()).is_err());
        let long_key = format!("{}=v", "k".repeat(257));
        assert!(validate_tracestate(long_key.as_bytes()).is_err());
        let long_value = format!("k={}", "v".repeat(257));
        assert!(validate_tracestate(long_value.as_bytes()).is_err());
    }
}
