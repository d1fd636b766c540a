//! Property tests of the issue-12 building blocks: `w3c::rebuild_tracestate` never panics and
//! always yields a grammar-valid list of at most 32 members and 512 characters drawn from its
//! input, and is idempotent; the lenient B3 parsers are the strict ones on lower-cased input.
//! PROPTEST_CASES sets the cases per property.

use proptest::prelude::*;

use trace_inject::b3;
use trace_inject::ids::{SpanId, TraceId};
use trace_inject::w3c;

#[path = "common/cases.rs"]
mod cases;
use cases::cases;

/// Near-valid tracestate members: valid ones, long ones, duplicates, broken ones, OWS.
fn member() -> impl Strategy<Value = String> {
    prop_oneof![
        ("[a-z][a-z0-9_*/@-]{0,8}", "[!-+--<>-~]{1,12}").prop_map(|(k, v)| format!("{k}={v}")),
        ("[a-c]", "[a-z]{1,3}").prop_map(|(k, v)| format!("{k}={v}")),
        ("[a-z]{1,4}", 100usize..260).prop_map(|(k, n)| format!("{k}={}", "v".repeat(n))),
        "[ \t]{0,2}[a-zA-Z=,. @]{0,10}[ \t]{0,2}",
        Just(String::new()),
    ]
}

fn lines() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::collection::vec(member(), 0..12).prop_map(|m| m.join(",")),
        0..5,
    )
}

proptest! {
    #![proptest_config(cases(500))]

    #[test]
    fn rebuilt_tracestate_is_valid_bounded_and_from_the_input(lines in lines()) {
        let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let Some(out) = w3c::rebuild_tracestate(&refs) else { return Ok(()); };
        prop_assert!(w3c::validate_tracestate(out.as_bytes()).is_ok(), "{out:?}");
        prop_assert!(out.len() <= w3c::TRACESTATE_TRUNCATE_TO);
        prop_assert!(!out.is_empty());
        let input: Vec<&str> = lines
            .iter()
            .flat_map(|l| l.split(','))
            .map(|m| m.trim_matches([' ', '\t']))
            .collect();
        for m in out.split(',') {
            prop_assert!(input.contains(&m), "{m:?} was not sent");
        }
        // Rebuilding what was rebuilt changes nothing.
        prop_assert_eq!(w3c::rebuild_tracestate(&[out.as_bytes()]), Some(out.clone()));
    }

    #[test]
    fn rebuild_tracestate_never_panics(
        lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..4)
    ) {
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        if let Some(out) = w3c::rebuild_tracestate(&refs) {
            prop_assert!(w3c::validate_tracestate(out.as_bytes()).is_ok());
        }
    }

    #[test]
    fn lenient_b3_ids_are_the_strict_parse_of_lower_case(
        s in "[0-9a-fA-FxX ]{14,34}|[0-9a-fA-F]{16}|[0-9a-fA-F]{32}"
    ) {
        let lower = s.to_ascii_lowercase();
        let canonical = !s.bytes().any(|c| c.is_ascii_uppercase());
        prop_assert_eq!(
            TraceId::parse_b3_lenient(s.as_bytes()),
            TraceId::parse(lower.as_bytes()).map(|t| (t, canonical))
        );
        prop_assert_eq!(
            SpanId::parse_b3_lenient(s.as_bytes()),
            SpanId::parse(lower.as_bytes()).map(|t| (t, canonical))
        );
    }

    #[test]
    fn lenient_sampling_never_panics(v in prop::collection::vec(any::<u8>(), 0..8)) {
        if let Some(b3::Spelled { canonical, .. }) = b3::sampled_lenient(&v) {
            prop_assert_eq!(canonical, v == b"1" || v == b"0");
        }
        prop_assert_eq!(b3::flags_lenient(&v).value, v == b"1");
    }

    #[test]
    fn written_flags_keep_only_known_bits(incoming in any::<u8>()) {
        // A traceparent with any flags byte, rewritten: sampled and random kept, the rest zero.
        let tp = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{incoming:02x}");
        let c = w3c::parse_traceparent(tp.as_bytes()).map(|t| t.context);
        prop_assert!(c.is_ok());
        if let Ok(c) = c {
            let out = w3c::format_traceparent(&c);
            let f = u8::from_str_radix(&out[53..55], 16).unwrap_or(0xff);
            prop_assert_eq!(f & !w3c::KNOWN_FLAGS, 0);
            prop_assert_eq!(f & w3c::KNOWN_FLAGS, incoming & w3c::KNOWN_FLAGS);
        }
    }
}
