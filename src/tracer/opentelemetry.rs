//! Envoy's OpenTelemetry tracer (`envoy.tracers.opentelemetry`, Istio's `opentelemetry`
//! provider), as measured on Envoy 1.37.0 and 1.40.0 (docs/envoy-opentelemetry-tracer.md; its
//! `span_context_extractor.cc`):
//!
//! - It reads and writes W3C only; B3 is ignored (a new trace; `x-b3-*`/`b3` go upstream as
//!   they came).
//! - A `traceparent` of exactly 55 characters, four `-`-separated fields of 2/32/16/2 hex digits
//!   in either case (the version is not checked), trace and span id not all zero, is joined; the
//!   router writes `00-<trace>-<its span>-<flags>` in lower case, and every `tracestate` line
//!   joined with `,`.
//! - Any other `traceparent` present makes no span at all: nothing is injected, the header goes
//!   upstream as it came.
//! - No `traceparent`: a new trace, whose id nobody outside Envoy knows before the response.

use super::{Outcome, Prediction};
use crate::context::{Format, FormatSet};
use crate::headers::TraceHeaders;

pub fn predict(h: &TraceHeaders) -> Prediction {
    let outcome = match h.traceparent {
        None => Outcome::NewRoot,
        Some(v) => match joinable(v) {
            Some(trace) => Outcome::Join(trace),
            None => Outcome::NoSpan,
        },
    };
    let writes = match outcome {
        Outcome::NoSpan => FormatSet::EMPTY,
        _ => FormatSet::of(&[Format::W3c]),
    };
    Prediction { outcome, writes }
}

/// The trace id of a `traceparent` by Envoy's rule, or `None` where it makes no span.
fn joinable(v: &[u8]) -> Option<u128> {
    if v.len() != 55 {
        return None;
    }
    let mut f = v.split(|&c| c == b'-');
    let (Some(ver), Some(t), Some(s), Some(flags), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return None;
    };
    let hex = |x: &[u8], n: usize| x.len() == n && x.iter().all(u8::is_ascii_hexdigit);
    if !(hex(ver, 2) && hex(t, 32) && hex(s, 16) && hex(flags, 2)) {
        return None;
    }
    let value = |x: &[u8]| {
        x.iter().try_fold(0u128, |acc, &c| {
            Some((acc << 4) | u128::from((c as char).to_digit(16)?))
        })
    };
    let (trace, span) = (value(t)?, value(s)?);
    (trace != 0 && span != 0).then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{S, T32, W3C_PARENT, W3C_TRACE};

    fn predict_for(pairs: &[(&str, &str)]) -> Prediction {
        predict(&crate::fixtures::headers(pairs))
    }

    // Each row is a measurement on Envoy 1.37.0 and 1.40.0 (docs/envoy-opentelemetry-tracer.md).
    #[test]
    fn matches_what_envoy_was_measured_to_do() {
        let t = u128::from_str_radix(W3C_TRACE, 16).unwrap();
        let tp = |s: &str| [("traceparent", s.to_string())];
        let cases: Vec<(Vec<(&str, String)>, Outcome)> = vec![
            (vec![], Outcome::NewRoot),
            (
                tp(&format!("00-{W3C_TRACE}-{W3C_PARENT}-01")).to_vec(),
                Outcome::Join(t),
            ),
            (
                tp(&format!("00-{W3C_TRACE}-{W3C_PARENT}-00")).to_vec(),
                Outcome::Join(t),
            ),
            // Upper case and version ff: joined (laxer than W3C).
            (
                tp(&format!("00-{}-{W3C_PARENT}-01", W3C_TRACE.to_uppercase())).to_vec(),
                Outcome::Join(t),
            ),
            (
                tp(&format!("ff-{W3C_TRACE}-{W3C_PARENT}-01")).to_vec(),
                Outcome::Join(t),
            ),
            // Not 55 characters (a higher version's extra fields too), zero ids: no span.
            (
                tp(&format!("01-{W3C_TRACE}-{W3C_PARENT}-01-what")).to_vec(),
                Outcome::NoSpan,
            ),
            (
                tp(&format!("00-{W3C_TRACE}-{W3C_PARENT}-01a")).to_vec(),
                Outcome::NoSpan,
            ),
            (
                tp(&format!("00-{}-{W3C_PARENT}-01", "0".repeat(32))).to_vec(),
                Outcome::NoSpan,
            ),
            (
                tp(&format!("00-{W3C_TRACE}-{}-01", "0".repeat(16))).to_vec(),
                Outcome::NoSpan,
            ),
            (tp("garbage").to_vec(), Outcome::NoSpan),
            // Every field hex (finding 1's rule): a version or flags that is not, no span.
            (
                tp(&format!("0g-{W3C_TRACE}-{W3C_PARENT}-01")).to_vec(),
                Outcome::NoSpan,
            ),
            (
                tp(&format!("00-{W3C_TRACE}-{W3C_PARENT}-0g")).to_vec(),
                Outcome::NoSpan,
            ),
            // B3 is not read.
            (
                vec![("x-b3-traceid", T32.into()), ("x-b3-spanid", S.into())],
                Outcome::NewRoot,
            ),
            (vec![("b3", format!("{T32}-{S}-1"))], Outcome::NewRoot),
        ];
        for (headers, want) in cases {
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let p = predict_for(&pairs);
            assert_eq!(p.outcome, want, "{pairs:?}");
            let writes_w3c = p.writes.contains(Format::W3c);
            assert_eq!(writes_w3c, want != Outcome::NoSpan, "{pairs:?}");
            assert!(!p.writes.contains(Format::B3Multi) && !p.writes.contains(Format::B3Single));
        }
    }
}
