//! B3 propagation (openzipkin/b3-propagation): multi-header `x-b3-*` and single-header `b3`.

use crate::context::{Format, Parsed, Sampling, TraceContext};
use crate::ids::{SpanId, TraceId};

use crate::headers::{
    Edit, MultiHeaders, TraceHeaders, B3, B3_FLAGS, B3_PARENT_SPAN_ID, B3_SAMPLED, B3_SPAN_ID,
    B3_TRACE_ID,
};
use crate::propagator::{Extracted, Propagator};

/// Every `x-b3-*` header, in the order they are written.
pub const MULTI_FIELDS: [&str; 5] = [
    B3_TRACE_ID,
    B3_SPAN_ID,
    B3_PARENT_SPAN_ID,
    B3_SAMPLED,
    B3_FLAGS,
];

/// B3 multi: `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`, `x-b3-flags`.
pub struct B3Multi;

impl Propagator for B3Multi {
    fn format(&self) -> Format {
        Format::B3Multi
    }

    fn fields(&self) -> &'static [&'static str] {
        &MULTI_FIELDS
    }

    fn label(&self) -> &'static str {
        "x-b3-*"
    }

    fn present(&self, h: &TraceHeaders) -> bool {
        !h.b3.is_empty()
    }

    fn extract(&self, h: &TraceHeaders) -> Extracted {
        let Spelled {
            value: parsed,
            canonical,
        } = read_multi(&h.b3);
        Extracted {
            lenient: !canonical && matches!(parsed, Parsed::Context(_)),
            exact: canonical && !h.b3_repeated,
            parsed,
        }
    }

    fn carries_all(&self) -> bool {
        true
    }

    fn inject(&self, ctx: &TraceContext, h: &TraceHeaders, edits: &mut Vec<Edit>) {
        for (name, value) in format_multi(ctx) {
            // Removing a header that is not there would be a wasted host call.
            if value.is_some() || h.b3.has(name) {
                edits.push(Edit { name, value });
            }
        }
    }

    fn remove(&self, h: &TraceHeaders, edits: &mut Vec<Edit>) {
        for name in MULTI_FIELDS {
            if h.b3.has(name) {
                edits.push(Edit::remove(name));
            }
        }
    }
}

/// B3 single: `b3: {traceid}-{spanid}[-{sampling}[-{parentspanid}]]`.
pub struct B3Single;

impl Propagator for B3Single {
    fn format(&self) -> Format {
        Format::B3Single
    }

    fn fields(&self) -> &'static [&'static str] {
        &[B3]
    }

    fn present(&self, h: &TraceHeaders) -> bool {
        h.b3_single.is_some()
    }

    fn extract(&self, h: &TraceHeaders) -> Extracted {
        let Some(v) = h.b3_single else {
            return Extracted::ABSENT;
        };
        let Spelled {
            value: parsed,
            canonical,
        } = read_single(v);
        Extracted {
            lenient: !canonical && matches!(parsed, Parsed::Context(_)),
            exact: canonical && !h.b3_single_repeated,
            parsed,
        }
    }

    fn carries_all(&self) -> bool {
        true
    }

    fn inject(&self, ctx: &TraceContext, _h: &TraceHeaders, edits: &mut Vec<Edit>) {
        edits.push(Edit::set(B3, format_single(ctx)));
    }

    fn remove(&self, h: &TraceHeaders, edits: &mut Vec<Edit>) {
        if h.b3_single.is_some() {
            edits.push(Edit::remove(B3));
        }
    }
}

/// Parses the `x-b3-*` headers (strictness as `read_multi`).
pub fn parse_multi(h: &MultiHeaders) -> Parsed {
    read_multi(h).value
}

/// A value read leniently, and whether it was spelled as the filter writes it (canonical): a
/// lenient spelling is continued and written back canonically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spelled<T> {
    pub value: T,
    pub canonical: bool,
}

impl<T> Spelled<T> {
    fn canonical(value: T) -> Self {
        Spelled {
            value,
            canonical: true,
        }
    }
}

/// What a malformed id of one B3 form is reported as.
struct IdReasons {
    trace: &'static str,
    span: &'static str,
    parent: &'static str,
}

const MULTI_REASONS: IdReasons = IdReasons {
    trace: "x-b3-traceid is not 16 or 32 hex, non-zero",
    span: "x-b3-spanid is not 16 hex, non-zero",
    parent: "x-b3-parentspanid is not 16 hex, non-zero",
};

const SINGLE_REASONS: IdReasons = IdReasons {
    trace: "b3 trace id is not 16 or 32 hex, non-zero",
    span: "b3 span id is not 16 hex, non-zero",
    parent: "b3 parent span id is not 16 hex, non-zero",
};

/// Trace, span and (optional) parent id as either B3 form carries them, in either case: the
/// context, canonical where every id was lower case.
fn read_ids(
    trace: &[u8],
    span: &[u8],
    parent: Option<&[u8]>,
    sampling: Sampling,
    why: &IdReasons,
) -> Result<Spelled<TraceContext>, &'static str> {
    let (trace_id, t_lower) = TraceId::parse_b3_lenient(trace).ok_or(why.trace)?;
    let (span_id, s_lower) = SpanId::parse_b3_lenient(span).ok_or(why.span)?;
    let (parent_span_id, p_lower) = match parent {
        None => (None, true),
        Some(p) => {
            let (p, lower) = SpanId::parse_b3_lenient(p).ok_or(why.parent)?;
            (Some(p), lower)
        }
    };
    Ok(Spelled {
        value: TraceContext {
            trace_id,
            span_id,
            parent_span_id,
            sampling,
            random: false,
        },
        canonical: t_lower && s_lower && p_lower,
    })
}

/// A malformed reading: never forwarded as it is.
fn malformed(why: &'static str) -> Spelled<Parsed> {
    Spelled {
        value: Parsed::Malformed(why),
        canonical: false,
    }
}

/// Parses the `x-b3-*` headers as the ecosystem reads them (Envoy's Zipkin tracer and
/// OpenTelemetry's B3 propagator, docs/b3-leniency.md): ids in either case, `x-b3-sampled`
/// `true`/`false`, an `x-b3-flags` other than `1` ignored.
pub fn read_multi(h: &MultiHeaders) -> Spelled<Parsed> {
    if h.is_empty() {
        return Spelled::canonical(Parsed::Absent);
    }
    read_multi_present(h).unwrap_or_else(malformed)
}

fn read_multi_present(h: &MultiHeaders) -> Result<Spelled<Parsed>, &'static str> {
    let sampling = multi_sampling(h)?;
    let parsed = match (h.trace_id, h.span_id) {
        (None, None) if h.parent_span_id.is_none() => {
            Spelled::canonical(Parsed::SamplingOnly(sampling.value))
        }
        (Some(t), Some(s)) => {
            let c = read_ids(t, s, h.parent_span_id, sampling.value, &MULTI_REASONS)?;
            Spelled {
                value: Parsed::Context(c.value),
                canonical: c.canonical,
            }
        }
        (Some(_), None) => return Err("x-b3-traceid without x-b3-spanid"),
        (None, _) => return Err("x-b3-spanid or x-b3-parentspanid without x-b3-traceid"),
    };
    Ok(Spelled {
        canonical: parsed.canonical && sampling.canonical,
        ..parsed
    })
}

/// The sampling state `x-b3-sampled` and `x-b3-flags` say (debug wins).
fn multi_sampling(h: &MultiHeaders) -> Result<Spelled<Sampling>, &'static str> {
    let debug = h.flags.map_or(Spelled::canonical(false), flags_lenient);
    let sampled = match h.sampled {
        None => Spelled::canonical(None),
        Some(v) => {
            let s = sampled_lenient(v).ok_or("x-b3-sampled is not 0, 1, true or false")?;
            Spelled {
                value: Some(s.value),
                canonical: s.canonical,
            }
        }
    };
    let value = match (debug.value, sampled.value) {
        (true, _) => Sampling::Debug,
        (false, Some(true)) => Sampling::Accept,
        (false, Some(false)) => Sampling::Deny,
        (false, None) => Sampling::Defer,
    };
    Ok(Spelled {
        value,
        canonical: debug.canonical && sampled.canonical,
    })
}

/// Parses a `b3` single-header value (strictness as `read_single`).
pub fn parse_single(v: &[u8]) -> Parsed {
    read_single(v).value
}

/// Parses a `b3` single-header value; ids in either case, as Envoy and OpenTelemetry read them.
pub fn read_single(v: &[u8]) -> Spelled<Parsed> {
    read_single_fields(v).unwrap_or_else(malformed)
}

fn single_sampling(f: &[u8]) -> Option<Sampling> {
    match f {
        b"0" => Some(Sampling::Deny),
        b"1" => Some(Sampling::Accept),
        b"d" => Some(Sampling::Debug),
        _ => None,
    }
}

fn read_single_fields(v: &[u8]) -> Result<Spelled<Parsed>, &'static str> {
    let mut fields = v.split(|&c| c == b'-');
    let (Some(first), second, third, fourth, None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err("b3 has more than four fields");
    };
    let Some(second) = second else {
        // Only a sampling state.
        let s = single_sampling(first).ok_or("b3 sampling-only value is not 0, 1 or d")?;
        return Ok(Spelled::canonical(Parsed::SamplingOnly(s)));
    };
    let sampling = match third {
        None => Sampling::Defer,
        Some(f) => single_sampling(f).ok_or("b3 sampling state is not 0, 1 or d")?,
    };
    let c = read_ids(first, second, fourth, sampling, &SINGLE_REASONS)?;
    Ok(Spelled {
        value: Parsed::Context(c.value),
        canonical: c.canonical,
    })
}

/// The `x-b3-*` headers for `ctx`: (name, Some(value)) to set, (name, None) to remove.
/// Debug is sent as `X-B3-Flags: 1` without `X-B3-Sampled`, as the spec asks.
pub fn format_multi(ctx: &TraceContext) -> [(&'static str, Option<String>); 5] {
    let (sampled, flags) = match ctx.sampling {
        Sampling::Defer => (None, None),
        Sampling::Deny => (Some("0".to_string()), None),
        Sampling::Accept => (Some("1".to_string()), None),
        Sampling::Debug => (None, Some("1".to_string())),
    };
    [
        (B3_TRACE_ID, Some(ctx.trace_id.to_b3())),
        (B3_SPAN_ID, Some(ctx.span_id.to_hex())),
        (B3_PARENT_SPAN_ID, ctx.parent_span_id.map(|p| p.to_hex())),
        (B3_SAMPLED, sampled),
        (B3_FLAGS, flags),
    ]
}

/// The `b3` single-header value for `ctx`. A deferred decision omits the sampling field, and
/// with it the parent span id (the grammar has no place for a parent without sampling state).
pub fn format_single(ctx: &TraceContext) -> String {
    let mut out = String::with_capacity(68);
    ctx.trace_id.push_b3(&mut out);
    out.push('-');
    ctx.span_id.push_hex(&mut out);
    let state = match ctx.sampling {
        Sampling::Defer => return out,
        Sampling::Deny => "0",
        Sampling::Accept => "1",
        Sampling::Debug => "d",
    };
    out.push('-');
    out.push_str(state);
    if let Some(p) = ctx.parent_span_id {
        out.push('-');
        p.push_hex(&mut out);
    }
    out
}

/// `X-B3-Sampled` read as the B3 spec asks a lenient reader to ("implementations should accept
/// `true|false`", never send them) and as Envoy and OpenTelemetry do (`docs/b3-leniency.md`):
/// not canonical for `true`/`false` (to be written `1`/`0`). Other values (`True`, `2`) are
/// refused: the two readers disagree on them.
pub fn sampled_lenient(v: &[u8]) -> Option<Spelled<bool>> {
    let (value, canonical) = match v {
        b"1" => (true, true),
        b"0" => (false, true),
        b"true" => (true, false),
        b"false" => (false, false),
        _ => return None,
    };
    Some(Spelled { value, canonical })
}

/// `X-B3-Flags` read as Envoy and OpenTelemetry read it: `1` is debug; any other value is ignored,
/// not fatal (the B3 spec: "no implementation treats it as a bit field"). Whether it says debug;
/// not canonical means the header is dropped when the filter writes B3.
pub fn flags_lenient(v: &[u8]) -> Spelled<bool> {
    let debug = v == b"1";
    Spelled {
        value: debug,
        canonical: debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T32: &[u8] = b"463ac35c9f6413ad48485a3953bb6124";
    const T16: &[u8] = b"48485a3953bb6124";
    const S: &[u8] = b"a2fb4a1d1a96d312";
    const P: &[u8] = b"0020000000000001";

    fn multi<'a>(t: Option<&'a [u8]>, s: Option<&'a [u8]>) -> MultiHeaders<'a> {
        MultiHeaders {
            trace_id: t,
            span_id: s,
            ..Default::default()
        }
    }

    fn ctx(p: Parsed) -> TraceContext {
        match p {
            Parsed::Context(c) => c,
            other => panic!("expected a context, got {other:?}"),
        }
    }

    #[test]
    fn multi_valid_contexts() {
        let c = ctx(parse_multi(&multi(Some(T32), Some(S))));
        assert_eq!(c.trace_id.to_b3(), "463ac35c9f6413ad48485a3953bb6124");
        assert_eq!(c.span_id.to_hex(), "a2fb4a1d1a96d312");
        assert_eq!(c.sampling, Sampling::Defer);
        assert_eq!(c.parent_span_id, None);

        let mut h = multi(Some(T16), Some(S));
        h.parent_span_id = Some(P);
        h.sampled = Some(b"1");
        let c = ctx(parse_multi(&h));
        assert!(!c.trace_id.wide);
        assert_eq!(c.parent_span_id.unwrap().to_hex(), "0020000000000001");
        assert_eq!(c.sampling, Sampling::Accept);

        h.sampled = Some(b"0");
        assert_eq!(ctx(parse_multi(&h)).sampling, Sampling::Deny);
        h.sampled = Some(b"true");
        assert_eq!(ctx(parse_multi(&h)).sampling, Sampling::Accept);
        h.sampled = None;
        h.flags = Some(b"1");
        assert_eq!(ctx(parse_multi(&h)).sampling, Sampling::Debug);
        // Debug implies accept even beside a contradicting sampled header.
        h.sampled = Some(b"0");
        assert_eq!(ctx(parse_multi(&h)).sampling, Sampling::Debug);
    }

    #[test]
    fn multi_sampling_only() {
        let h = MultiHeaders {
            sampled: Some(b"0"),
            ..Default::default()
        };
        assert_eq!(parse_multi(&h), Parsed::SamplingOnly(Sampling::Deny));
        let h = MultiHeaders {
            flags: Some(b"1"),
            ..Default::default()
        };
        assert_eq!(parse_multi(&h), Parsed::SamplingOnly(Sampling::Debug));
        assert_eq!(parse_multi(&MultiHeaders::default()), Parsed::Absent);
    }

    #[test]
    fn multi_malformed() {
        let bad_trace: [&[u8]; 6] = [
            b"463ac35c9f6413ad48485a3953bb612",
            b"463ac35c9f6413ad48485a3953bb61245",
            b"00000000000000000000000000000000",
            b"zzzac35c9f6413ad48485a3953bb6124",
            b"\xff\xfe",
            b"",
        ];
        for t in bad_trace {
            assert!(
                matches!(parse_multi(&multi(Some(t), Some(S))), Parsed::Malformed(_)),
                "{t:?}"
            );
        }
        for s in [&b"0000000000000000"[..], b"a2fb4a1d1a96d31"] {
            assert!(matches!(
                parse_multi(&multi(Some(T32), Some(s))),
                Parsed::Malformed(_)
            ));
        }
        // Trace id alone, span id alone, parent alone.
        assert!(matches!(
            parse_multi(&multi(Some(T32), None)),
            Parsed::Malformed(_)
        ));
        assert!(matches!(
            parse_multi(&multi(None, Some(S))),
            Parsed::Malformed(_)
        ));
        let h = MultiHeaders {
            parent_span_id: Some(P),
            ..Default::default()
        };
        assert!(matches!(parse_multi(&h), Parsed::Malformed(_)));
        let mut h = multi(Some(T32), Some(S));
        h.parent_span_id = Some(b"0000000000000000");
        assert!(matches!(parse_multi(&h), Parsed::Malformed(_)));
        let mut h = multi(Some(T32), Some(S));
        h.sampled = Some(b"2");
        assert!(matches!(parse_multi(&h), Parsed::Malformed(_)));
        // Upper case, true/false, another x-b3-flags: read as Envoy and OpenTelemetry read them,
        // but not canonical.
        let mut h = multi(
            Some(b"463AC35C9F6413AD48485A3953BB6124"),
            Some(b"A2FB4A1D1A96D312"),
        );
        h.flags = Some(b"2");
        h.sampled = Some(b"true");
        let Spelled {
            value: p,
            canonical,
        } = read_multi(&h);
        assert_eq!(ctx(p).sampling, Sampling::Accept);
        assert!(!canonical);
        assert!(read_multi(&multi(Some(T32), Some(S))).canonical);
    }

    #[test]
    fn single_valid_forms() {
        let c = ctx(parse_single(
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        ));
        assert_eq!(c.sampling, Sampling::Accept);
        assert_eq!(c.parent_span_id.unwrap().to_hex(), "05e3ac9a4f6e3b90");
        let c = ctx(parse_single(
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
        ));
        assert_eq!(c.sampling, Sampling::Defer);
        let c = ctx(parse_single(b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-d"));
        assert_eq!(c.sampling, Sampling::Debug);
        assert!(!c.trace_id.wide);
        assert_eq!(parse_single(b"0"), Parsed::SamplingOnly(Sampling::Deny));
        assert_eq!(parse_single(b"1"), Parsed::SamplingOnly(Sampling::Accept));
        assert_eq!(parse_single(b"d"), Parsed::SamplingOnly(Sampling::Debug));
    }

    #[test]
    fn single_malformed() {
        for v in [
            &b""[..],
            b"2",
            b"true",
            b"80f198ee56343ba864fe8b2a57d3eff7",
            b"80f198ee56343ba864fe8b2a57d3eff7-",
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-",
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x",
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-",
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9",
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-1",
            // Parent without a sampling state is not in the grammar.
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-05e3ac9a4f6e3b90",
            b"00000000000000000000000000000000-e457b5a2e4d86bd1-1",
            b"80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1",
            b"\xff\xfe-\x00",
        ] {
            assert!(matches!(parse_single(v), Parsed::Malformed(_)), "{v:?}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for v in [
            &b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"[..],
            b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
            b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-d",
            b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-0",
        ] {
            let c = ctx(parse_single(v));
            assert_eq!(format_single(&c).as_bytes(), v);
            let m = format_multi(&c);
            let get = |n: &str| {
                m.iter()
                    .find(|(k, _)| *k == n)
                    .and_then(|(_, v)| v.as_deref())
                    .map(str::as_bytes)
            };
            let back = parse_multi(&MultiHeaders {
                trace_id: get(B3_TRACE_ID),
                span_id: get(B3_SPAN_ID),
                parent_span_id: get(B3_PARENT_SPAN_ID),
                sampled: get(B3_SAMPLED),
                flags: get(B3_FLAGS),
            });
            assert_eq!(back, Parsed::Context(c));
        }
    }

    #[test]
    fn debug_is_sent_as_flags_without_sampled() {
        let c = ctx(parse_single(b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-d"));
        let m = format_multi(&c);
        assert!(m.contains(&(B3_FLAGS, Some("1".into()))));
        assert!(m.contains(&(B3_SAMPLED, None)));
    }

    #[test]
    fn deferred_single_drops_parent() {
        let mut c = ctx(parse_single(
            b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        ));
        c.sampling = Sampling::Defer;
        assert_eq!(format_single(&c), "64fe8b2a57d3eff7-e457b5a2e4d86bd1");
    }
    #[test]
    fn sampling_headers_read_leniently() {
        let spelled = |value, canonical| Some(Spelled { value, canonical });
        assert_eq!(sampled_lenient(b"1"), spelled(true, true));
        assert_eq!(sampled_lenient(b"0"), spelled(false, true));
        assert_eq!(sampled_lenient(b"true"), spelled(true, false));
        assert_eq!(sampled_lenient(b"false"), spelled(false, false));
        for bad in [&b""[..], b"True", b"FALSE", b"2", b"d", b" 1", b"\xff"] {
            assert_eq!(sampled_lenient(bad), None, "{bad:?}");
        }
        assert_eq!(flags_lenient(b"1"), Spelled::canonical(true));
        for ignored in [&b"0"[..], b"2", b"3", b"", b"debug", b"\xff"] {
            let ignored_flag = Spelled {
                value: false,
                canonical: false,
            };
            assert_eq!(flags_lenient(ignored), ignored_flag, "{ignored:?}");
        }
    }

    // Mutation testing: `fields` is read through the Propagator interface only (B3 multi has
    // its own label), so nothing else notices an empty list.
    #[test]
    fn b3_multi_names_its_five_headers() {
        assert_eq!(B3Multi.fields(), &MULTI_FIELDS[..]);
        assert_eq!(B3Multi.fields().len(), 5);
        assert!(B3Multi.fields().contains(&"x-b3-traceid"));
    }

    use crate::fixtures::headers;

    #[test]
    fn both_forms_through_the_propagator_interface() {
        assert_eq!(B3Multi.label(), "x-b3-*");
        assert_eq!(B3Single.label(), "b3");
        assert_eq!(B3Single.fields(), &["b3"][..]);
        let none = headers(&[("x-request-id", "r"), ("traceparent", "x")]);
        assert!(!B3Multi.present(&none));
        assert!(!B3Single.present(&none));
        assert_eq!(B3Single.extract(&none), Extracted::ABSENT);
        assert!(B3Multi.present(&headers(&[("x-b3-sampled", "0")])));
        assert!(B3Single.present(&headers(&[("b3", "0")])));
        // Both carry the parent and the sampling state: a context that differs only there does
        // not agree (so it is rewritten, not forwarded).
        let c = ctx(parse_single(
            b"463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1",
        ));
        let mut other = c;
        other.parent_span_id = SpanId::parse(P);
        for p in [&B3Multi as &dyn Propagator, &B3Single] {
            assert!(p.carries_all());
            assert!(p.agrees(&c, &c));
            assert!(!p.agrees(&c, &other));
        }
    }

    /// Any upper-case id (trace, span or parent), a `true`/`false` or an ignored flag is read,
    /// then rewritten in canonical form: lenient, never exact; a repeated header is never exact.
    #[test]
    fn canonical_means_every_field_canonical() {
        let (t, s, p) = (
            "463ac35c9f6413ad48485a3953bb6124",
            "a2fb4a1d1a96d312",
            "0020000000abcdef",
        );
        let up = |x: &str| x.to_ascii_uppercase();
        let singles = [
            (format!("{t}-{s}-1-{p}"), true),
            (format!("{}-{s}-1-{p}", up(t)), false),
            (format!("{t}-{}-1-{p}", up(s)), false),
            (format!("{t}-{s}-1-{}", up(p)), false),
            (format!("{t}-{}-1-{}", up(s), up(p)), false),
        ];
        for (v, canonical) in &singles {
            let Spelled {
                value: parsed,
                canonical: read_canonical,
            } = read_single(v.as_bytes());
            assert!(matches!(parsed, Parsed::Context(_)), "{v}");
            assert_eq!(read_canonical, *canonical, "{v}");
            let e = B3Single.extract(&headers(&[("b3", v)]));
            assert_eq!((e.exact, e.lenient), (*canonical, !*canonical), "{v}");
            let twice = B3Single.extract(&headers(&[("b3", v), ("b3", v)]));
            assert!(!twice.exact, "{v} twice");
        }
        let bad = B3Single.extract(&headers(&[("b3", "nonsense-a2fb4a1d1a96d312")]));
        assert!(!bad.exact && !bad.lenient);

        let (ut, us, upp) = (up(t), up(s), up(p));
        let multis = [
            (t, s, p, Some("1"), None, true),
            (&ut, s, p, Some("1"), None, false),
            (t, &us, p, Some("1"), None, false),
            (t, s, &upp, Some("1"), None, false),
            (t, s, p, Some("true"), None, false),
            (t, s, p, Some("1"), Some("2"), false),
            (t, s, p, None, Some("1"), true),
        ];
        for (t, s, p, sampled, flags, canonical) in multis {
            let mut pairs = vec![
                ("x-b3-traceid", t),
                ("x-b3-spanid", s),
                ("x-b3-parentspanid", p),
            ];
            pairs.extend(sampled.map(|v| ("x-b3-sampled", v)));
            pairs.extend(flags.map(|v| ("x-b3-flags", v)));
            let h = headers(&pairs);
            let Spelled {
                value: parsed,
                canonical: read_canonical,
            } = read_multi(&h.b3);
            assert!(matches!(parsed, Parsed::Context(_)), "{pairs:?}");
            assert_eq!(read_canonical, canonical, "{pairs:?}");
            let e = B3Multi.extract(&h);
            assert_eq!((e.exact, e.lenient), (canonical, !canonical), "{pairs:?}");
        }
    }
}
