//! W3C Trace Context: `traceparent` and `tracestate`.

use crate::context::{Format, Parsed, Sampling, TraceContext};
use crate::headers::{Edit, TraceHeaders, TRACEPARENT, TRACESTATE};
use crate::ids::{parse_lower_hex, SpanId, TraceId};
use crate::propagator::{Extracted, Propagator};

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
                lenient: false,
            },
            // Strict: the W3C suite checks that upper case and the like are refused.
            Some(v) => match parse_traceparent(v) {
                Ok(tp) => Extracted {
                    parsed: Parsed::Context(tp.context),
                    exact: tp.canonical,
                    lenient: false,
                },
                Err(why) => Extracted {
                    parsed: Parsed::Malformed(why),
                    exact: false,
                    lenient: false,
                },
            },
        }
    }

    fn carries_all(&self) -> bool {
        false
    }

    /// A deferred decision has no W3C form: `-00` is "not sampled" to every tracer that reads
    /// it, `-01` "sampled" to some (docs/edge-measurements.md). None is written then.
    fn can_carry(&self, ctx: &TraceContext) -> bool {
        ctx.sampling != Sampling::Defer
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

/// What goes upstream in the place of the incoming `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// No `traceparent`.
    Nothing,
    /// The incoming one, as it came.
    AsItCame,
    /// A `traceparent` written anew (by the filter, or by a tracer's router) in this trace.
    Written(TraceId),
}

impl Outgoing {
    /// What a plan's edits send: the `traceparent` set to `ctx`, removed, or left alone.
    pub fn planned(edits: &[Edit], ctx: &TraceContext) -> Outgoing {
        match edits.iter().rev().find(|e| e.name == TRACEPARENT) {
            None => Outgoing::AsItCame,
            Some(Edit { value: Some(_), .. }) => Outgoing::Written(ctx.trace_id),
            Some(_) => Outgoing::Nothing,
        }
    }
}

impl TraceparentFate {
    /// The fate of the `traceparent` the request came with (`incoming`, when valid).
    pub fn of(incoming: Option<&TraceContext>, outgoing: Outgoing) -> TraceparentFate {
        match (incoming, outgoing) {
            (Some(_), Outgoing::AsItCame) => TraceparentFate::Unchanged,
            (Some(tp), Outgoing::Written(t)) if tp.trace_id.same_trace(&t) => {
                TraceparentFate::Updated
            }
            _ => TraceparentFate::Replaced,
        }
    }
}

/// The `tracestate` edit for what goes upstream in its `traceparent`'s place (`tracestate_edit`);
/// a list that breaks the grammar is noted in `malformed`.
pub fn plan_tracestate(
    h: &TraceHeaders,
    incoming: Option<&TraceContext>,
    outgoing: Outgoing,
    edits: &mut Vec<Edit>,
    malformed: &mut Vec<(&'static str, &'static str)>,
) {
    if let Some((edit, why)) = tracestate_edit(h, TraceparentFate::of(incoming, outgoing)) {
        if let Some(why) = why {
            malformed.push((TRACESTATE, why));
        }
        edits.push(edit);
    }
}

/// `tracestate` belongs to the `traceparent` it came with (Recommendation §3.3): it goes on
/// byte for byte while that `traceparent` does, goes with it when it is replaced, and, where it
/// was updated, rebuilt from its valid members. Returns the edit, with the reason when the
/// tracestate itself was malformed.
pub fn tracestate_edit(
    h: &TraceHeaders,
    fate: TraceparentFate,
) -> Option<(Edit, Option<&'static str>)> {
    if h.tracestate.is_empty() {
        return None;
    }
    if fate == TraceparentFate::Replaced {
        return Some((Edit::remove(TRACESTATE), None));
    }
    let combined = h.tracestate.join(&b","[..]);
    // More than 32 members, or one member that breaks the grammar: the whole list is discarded
    // (the official W3C suite expects it, also for the valid members beside it: "expects the
    // tracestate to be discarded"); a key twice is no such break ("kept as-is or one of them
    // discarded").
    if let Err(why) = check_tracestate(&combined, true) {
        return Some((Edit::remove(TRACESTATE), Some(why)));
    }
    match fate {
        // "If the value of the traceparent field wasn't changed before propagation, tracestate
        // MUST NOT be modified as well."
        TraceparentFate::Unchanged | TraceparentFate::Replaced => None,
        // Rewritten: the first of a key kept, truncated by the Recommendation's rules;
        // unchanged when that changes nothing.
        TraceparentFate::Updated => {
            let valid = validate_tracestate(&combined);
            match rebuild_tracestate(&h.tracestate) {
                Some(v) if valid.is_ok() && h.tracestate.len() == 1 && v.as_bytes() == combined => {
                    None
                }
                Some(v) => Some((Edit::set(TRACESTATE, v), valid.err())),
                None => Some((Edit::remove(TRACESTATE), valid.err())),
            }
        }
    }
}

const V00_LEN: usize = 55;
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A valid `traceparent` exactly as the filter would write it (version `00`, lower case).
pub fn is_canonical_traceparent(v: &[u8]) -> bool {
    parse_traceparent(v).is_ok_and(|tp| tp.canonical)
}

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
            sampling: if flags & u128::from(FLAG_SAMPLED) != 0 {
                Sampling::Accept
            } else {
                Sampling::Deny
            },
            random: flags & u128::from(FLAG_RANDOM) != 0,
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
    check_tracestate(v, false)
}

/// The grammar and the 32-member limit; a key twice is an error unless `duplicates_ok`.
fn check_tracestate(v: &[u8], duplicates_ok: bool) -> Result<(), &'static str> {
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
        if !duplicates_ok && keys.contains(&key) {
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

/// W3C Trace Context Level 2 (sections cited by title: numbers differ between editions),
/// "trace-flags" / "Sampled flag": the `sampled` bit.
pub const FLAG_SAMPLED: u8 = 0x01;
/// "Random Trace ID Flag": set when at least the right-most 7 bytes of the trace-id
/// are random. Every trace id this filter generates is 128 random bits.
pub const FLAG_RANDOM: u8 = 0x02;
/// The flags this filter understands; "Other Flags": "Vendors MUST set those to zero" on a
/// `traceparent` they write.
pub const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;

/// "tracestate Limits" (under "Combined Header Value"; §3.3.1.3 in the Level 2 draft the issue
/// cites): "Vendors SHOULD propagate at least 512 characters of a combined header. This length
/// includes commas required to separate list items and optional white space".
pub const TRACESTATE_TRUNCATE_TO: usize = 512;
/// "tracestate Limits": "Entries larger than `128` characters long SHOULD be removed first."
const TRACESTATE_LARGE_ENTRY: usize = 128;

/// The `tracestate` to send with a `traceparent` the filter writes new or changes, from the
/// incoming `tracestate` header lines (several lines are one list, RFC 9110 §5.3, as "tracestate
/// Header Field Values" requires). `None` when nothing is left (same section: vendors "SHOULD
/// avoid sending" an empty one).
///
/// By the Recommendation:
/// - "tracestate Header Field Values" (list, Key, Value): each member is `key=value` by the ABNF;
///   OWS around members and empty members are dropped (they carry nothing). The processing model
///   ("A traceparent is Received", step 3): "Invalid `tracestate` entries MAY also be
///   discarded": invalid members go, the rest stay.
/// - "Combined Header Value": a key appears once ("Mutating the tracestate Field": vendors "MAY
///   also discard duplicate keys"); the first (left-most, most recent) member of a key is kept,
///   later duplicates dropped.
/// - "tracestate Header Field Values": at most 32 list-members; beyond that "the right-most
///   `list-member` should be removed".
/// - "tracestate Limits": truncation to 512 characters (commas included) removes whole entries:
///   "Entries larger than `128` characters long SHOULD be removed first. Then entries SHOULD be
///   removed starting from the end of `tracestate`." Large entries go right-most first, and only
///   as many as needed, so the least is lost.
///
/// Not for pass-through: where the `traceparent` goes on unchanged, `tracestate` "MUST NOT be
/// modified" ("Mutating the traceparent Field") and is forwarded byte for byte instead.
pub fn rebuild_tracestate(lines: &[&[u8]]) -> Option<String> {
    let mut members: Vec<(&[u8], &[u8])> = Vec::new();
    for line in lines {
        for member in line.split(|&c| c == b',') {
            let member = trim_ows(member);
            let Some(eq) = member.iter().position(|&c| c == b'=') else {
                continue;
            };
            let (key, value) = (member.get(..eq), member.get(eq + 1..));
            let (Some(key), Some(value)) = (key, value) else {
                continue;
            };
            if !valid_key(key) || !valid_value(value) {
                continue;
            }
            if members.iter().any(|(k, _)| *k == key) {
                continue;
            }
            if members.len() == MAX_TRACESTATE_MEMBERS {
                break;
            }
            members.push((key, member));
        }
    }
    let combined_len = |m: &[(&[u8], &[u8])]| -> usize {
        m.iter().map(|(_, e)| e.len()).sum::<usize>() + m.len().saturating_sub(1)
    };
    while combined_len(&members) > TRACESTATE_TRUNCATE_TO {
        match members
            .iter()
            .rposition(|(_, e)| e.len() > TRACESTATE_LARGE_ENTRY)
        {
            Some(i) => {
                members.remove(i);
            }
            None => {
                members.pop();
            }
        }
    }
    if members.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(combined_len(&members));
    for (i, (_, entry)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Valid members are printable ASCII (checked above): never lossy.
        out.push_str(&String::from_utf8_lossy(entry));
    }
    Some(out)
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
    #[test]
    fn trace_flags_level_2() {
        // Parsed: sampled and random read; other bits (here 0xfc) not kept when rewritten.
        let tp =
            parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff").unwrap();
        assert!(tp.context.random && tp.context.sampling.sampled());
        assert!(format_traceparent(&tp.context).ends_with("-03"));
        let mut c = parse_traceparent(TP).unwrap().context;
        assert!(!c.random);
        c.sampling = Sampling::Deny;
        assert!(format_traceparent(&c).ends_with("-00"));
        c.random = true;
        assert!(format_traceparent(&c).ends_with("-02"));
    }

    fn rebuilt(lines: &[&str]) -> Option<String> {
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        rebuild_tracestate(&lines)
    }

    #[test]
    fn rebuilt_tracestate_keeps_valid_members_in_order() {
        assert_eq!(rebuilt(&[]), None);
        assert_eq!(rebuilt(&[""]), None);
        assert_eq!(rebuilt(&[" , ,\t"]), None);
        assert_eq!(
            rebuilt(&["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]).as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        // Several lines are one list; OWS and empty members go; leading spaces of a value stay.
        assert_eq!(
            rebuilt(&["rojo=1 ,, ", "\tcongo=  2 ", "a@b=3"]).as_deref(),
            Some("rojo=1,congo=  2,a@b=3")
        );
    }

    #[test]
    fn rebuilt_tracestate_drops_invalid_members_and_later_duplicates() {
        assert_eq!(
            rebuilt(&["foo=1,foo=1"]).as_deref(),
            Some("foo=1"),
            "a repeated member is one"
        );
        assert_eq!(
            rebuilt(&["foo=1", "bar=2,foo=2"]).as_deref(),
            Some("foo=1,bar=2"),
            "the left-most of a key wins"
        );
        assert_eq!(
            rebuilt(&["Foo=1,ok=1,novalue,empty=,x=a=b,sp ace=1,tab=a\tb,ok2=caf\u{e9}"])
                .as_deref(),
            Some("ok=1")
        );
        assert_eq!(rebuilt(&["BAD=1"]), None);
        let long_key = format!("{}=v,ok=1", "k".repeat(257));
        assert_eq!(rebuilt(&[&long_key]).as_deref(), Some("ok=1"));
        let max_key = format!("{}=v", "k".repeat(256));
        assert_eq!(rebuilt(&[&max_key]).as_deref(), Some(max_key.as_str()));
        // Invalid bytes never make it through, nor panic.
        let raw: &[&[u8]] = &[b"a=\xff\xfe,b=1", b"\xc3\xa9=1"];
        assert_eq!(rebuild_tracestate(raw).as_deref(), Some("b=1"));
    }

    #[test]
    fn rebuilt_tracestate_keeps_at_most_32_members_the_left_most() {
        let members: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        let out = rebuilt(&[&members.join(",")]).unwrap();
        assert_eq!(out, members[..32].join(","));
        // Invalid and duplicate members do not count towards the 32.
        let mut with_junk = vec!["k0=dup".to_string(), "BAD=x".to_string()];
        with_junk.splice(0..0, members[..32].iter().cloned());
        assert_eq!(
            rebuilt(&[&with_junk.join(",")]).unwrap(),
            members[..32].join(",")
        );
    }

    #[test]
    fn rebuilt_tracestate_truncates_whole_entries_to_512() {
        // Exactly 512: untouched.
        let e = |k: &str, n: usize| format!("{k}={}", "v".repeat(n - k.len() - 1));
        let four: Vec<String> = ["a", "b", "c", "d"].iter().map(|k| e(k, 127)).collect();
        let exact = four.join(","); // 4*127 + 3 = 511
        assert_eq!(exact.len(), 511);
        let exact512 = format!("{exact},{}", "z=");
        assert_eq!(rebuilt(&[&exact]).as_deref(), Some(exact.as_str()));
        assert_eq!(
            rebuilt(&[&exact512]).as_deref(),
            Some(exact.as_str()),
            "z= is invalid"
        );
        let at512 = format!("{},{}", four[..3].join(","), e("d", 128));
        assert_eq!(at512.len(), 512);
        assert_eq!(rebuilt(&[&at512]).as_deref(), Some(at512.as_str()));

        // Over 512: entries over 128 characters go first, right-most first, only as needed.
        let big1 = e("big1", 200);
        let big2 = e("big2", 200);
        let small: Vec<String> = (0..10).map(|i| e(&format!("s{i}"), 20)).collect();
        let list = format!("{big1},{},{big2}", small.join(","));
        // 200 + 10*21 + 1 + 200 = 611 > 512: dropping big2 (the right-most large) is enough.
        let out = rebuilt(&[&list]).unwrap();
        assert_eq!(out, format!("{big1},{}", small.join(",")));
        assert!(out.len() <= 512);

        // Large entries all gone and still over: then from the end.
        let many: Vec<String> = (0..30).map(|i| e(&format!("m{i}"), 30)).collect();
        let list = format!("{},{big1}", many.join(","));
        let out = rebuilt(&[&list]).unwrap();
        // 30-character entries: 16 of them take 16*31-1 = 495 characters, 17 would take 526.
        assert_eq!(out, many[..16].join(","));

        // Two large entries, 519 characters: the right-most large one goes, nothing else.
        let h = format!("h={}", "v".repeat(255));
        let i = format!("i={}", "v".repeat(255));
        let list = format!("a=1,{h},{i}");
        assert_eq!(list.len(), 519);
        assert_eq!(rebuilt(&[&list]), Some(format!("a=1,{h}")));
        // Large entries are removed before small ones, even before a small right-most one.
        let list = format!("{h},{i},z=1");
        assert_eq!(rebuilt(&[&list]), Some(format!("{h},z=1")));
    }

    #[test]
    fn rebuilt_tracestate_is_valid_by_the_grammar() {
        for lines in [
            &["rojo=1,rojo=2,Bad=3"][..],
            &["a=1", "b=2", "a=3"],
            &[" x = y "],
        ] {
            if let Some(out) = rebuilt(lines) {
                assert!(validate_tracestate(out.as_bytes()).is_ok(), "{out:?}");
            }
        }
    }

    use crate::fixtures::headers as th;

    #[test]
    fn each_separator_is_checked() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(parse_traceparent(good.as_bytes()).is_ok());
        for at in [2, 35, 52] {
            let mut bad = good.as_bytes().to_vec();
            if let Some(b) = bad.get_mut(at) {
                *b = b'_';
            }
            assert!(parse_traceparent(&bad).is_err(), "separator {at}");
        }
    }

    /// W3C carries trace id, parent-id and the sampled bit, not B3's parent span: a context that
    /// differs only there agrees; only `traceparent` makes the format present.
    #[test]
    fn the_propagator_carries_what_w3c_can_say() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let Parsed::Context(c) = W3c.extract(&th(&[("traceparent", tp)])).parsed else {
            panic!("a context");
        };
        let mut with_parent = c;
        with_parent.parent_span_id = SpanId::parse(b"0020000000000001");
        assert!(!W3c.carries_all());
        assert!(W3c.agrees(&with_parent, &c));
        assert_eq!(W3c.fields(), &[TRACEPARENT, TRACESTATE][..]);
        assert!(!W3c.present(&th(&[("tracestate", "a=1"), ("b3", "1")])));
        assert!(W3c.present(&th(&[("traceparent", "x")])));
    }

    /// What becomes of `tracestate` with each fate of its `traceparent`, at the 32-member edge.
    #[test]
    fn tracestate_follows_its_traceparent() {
        use TraceparentFate::*;
        let edit = |lines: &[&str], fate| {
            let pairs: Vec<(&str, &str)> = lines.iter().map(|l| ("tracestate", *l)).collect();
            tracestate_edit(&th(&pairs), fate)
        };
        let removed = Some((Edit::remove(TRACESTATE), None));
        assert_eq!(edit(&[], Updated), None);
        assert_eq!(edit(&["a=1"], Replaced), removed);
        assert_eq!(edit(&["a=1,b=2"], Unchanged), None);
        assert_eq!(
            edit(&["a=1,b=2"], Updated),
            None,
            "already what a rebuild gives"
        );
        assert_eq!(
            edit(&["a=1", "b=2"], Updated),
            Some((Edit::set(TRACESTATE, "a=1,b=2".into()), None)),
            "two lines become one"
        );
        assert_eq!(
            edit(&["a=1,a=2"], Updated),
            Some((
                Edit::set(TRACESTATE, "a=1".into()),
                Some("tracestate key appears twice")
            )),
            "a key twice: the first kept, and said why"
        );
        let members = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let at_limit = members(32);
        assert_eq!(
            edit(&[&at_limit], Unchanged),
            None,
            "32 members are allowed"
        );
        assert_eq!(edit(&[&at_limit], Updated), None);
        let over = members(33);
        for fate in [Unchanged, Updated] {
            let (e, why) = edit(&[&over], fate).unwrap_or((Edit::remove("none"), None));
            assert_eq!(e, Edit::remove(TRACESTATE));
            assert!(why.is_some_and(|w| w.contains("32")), "{why:?}");
        }
        let broken = edit(&["a=1,B=2"], Unchanged);
        assert!(matches!(broken, Some((e, Some(_))) if e == Edit::remove(TRACESTATE)));
    }

    /// Exactly 512 characters stay whole; one more and whole entries go.
    #[test]
    fn rebuilt_tracestate_truncation_edge() {
        // 8 members of 63 characters + 7 commas = 511; the last 64 long = 512.
        let member = |i: usize, len: usize| format!("k{i}={}", "v".repeat(len - 3));
        let mut m: Vec<String> = (0..7).map(|i| member(i, 63)).collect();
        m.push(member(7, 64));
        let exact = m.join(",");
        assert_eq!(exact.len(), TRACESTATE_TRUNCATE_TO);
        assert_eq!(rebuilt(&[&exact]).as_deref(), Some(exact.as_str()));
        m.push("z=1".into());
        assert_eq!(
            rebuilt(&[&m.join(",")]).as_deref(),
            Some(exact.as_str()),
            "the last one goes"
        );
        // "Larger than 128" goes first; an entry of exactly 128 is not larger.
        let at_128 = member(0, 128);
        let mut m: Vec<String> = vec![at_128.clone()];
        m.extend((1..7).map(|i| member(i, 64)));
        let over = m.join(",");
        assert!(over.len() > TRACESTATE_TRUNCATE_TO, "{}", over.len());
        let kept = rebuilt(&[&over]).unwrap_or_default();
        assert!(kept.starts_with(&at_128), "{kept}");
        assert!(!kept.contains("k6="), "the right-most went: {kept}");
    }
}
