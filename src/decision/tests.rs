//! The decision, case by case: what goes upstream and what the caller is told.
use super::*;
use crate::config::Config;
use crate::context::Format::*;
use crate::fixtures::{Counter, S, T32, TRACEPARENT as TP};
use crate::ids::SpanId;

/// A trusted caller on `hop`, the filter exporting its own spans or not.
fn on(hop: Hop, exporting: bool) -> Circumstances {
    Circumstances {
        hop,
        exporting,
        trusted: true,
    }
}

fn plain(exporting: bool) -> Circumstances {
    on(Hop::Plain, exporting)
}

fn decide_in(headers: &[(&str, &str)], cfg: &Config, at: Circumstances) -> Decision {
    let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let settings = Settings::compile(cfg.clone(), false);
    decide(
        &TraceHeaders::collect(pairs),
        &settings,
        at,
        &mut Counter(0),
    )
}

fn untrusted(headers: &[(&str, &str)], cfg: &Config) -> Decision {
    let at = Circumstances {
        trusted: false,
        ..plain(false)
    };
    decide_in(headers, cfg, at)
}

/// An ignored `x-b3-flags` alone (not `1`) is no sampling decision: the new trace is sampled
/// as configured, not left deferred.
#[test]
fn an_ignored_flag_alone_is_no_decision() {
    for percent in [0.0, 100.0] {
        let cfg = Config {
            sampling_percent: Some(percent),
            ..Config::default()
        };
        let d = decide_in(&[("x-b3-flags", "2")], &cfg, plain(false));
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
        sampling_percent: Some(0.0),
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
        assert_eq!(d.told_trace_id, Some(d.context.trace_id));
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
        new_trace_sampling: Some(crate::config::NewTraceSampling::Defer),
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
    assert_eq!(d.told_trace_id.map(|t| t.to_hex32()).as_deref(), Some(T32));
}

fn run(headers: &[(&str, &str)], cfg: &Config) -> Decision {
    decide_in(headers, cfg, plain(false))
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
        sampling_percent: Some(0.0),
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
        sampling_percent: Some(0.0),
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
    assert!(tp.contains(&d.told_trace_id.unwrap().to_hex32()));

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

fn on_tracer(kind: TracerKind) -> Circumstances {
    on(Hop::Tracer(kind), false)
}

fn on_tracer_hop(headers: &[(&str, &str)], reads_w3c: bool) -> Decision {
    decide_in(
        headers,
        &Config::default(),
        on_tracer(TracerKind::Zipkin { reads_w3c }),
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
    assert_eq!(d.told_trace_id.map(|t| t.to_hex32()).as_deref(), Some(T32));
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
    assert_eq!(d.told_trace_id.map(|t| t.to_hex32()).as_deref(), Some(T32));
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
        assert_eq!(d.told_trace_id, None, "{headers:?}");
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
        d.told_trace_id.map(|t| t.to_hex32()).as_deref(),
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
    assert_eq!(d.told_trace_id.map(|t| t.to_hex32()).as_deref(), Some(T32));
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
    assert_eq!(d.told_trace_id.map(|t| t.to_hex32()).as_deref(), Some(T32));
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
    assert_eq!(d.told_trace_id.map(|t| t.to_b3()), Some(written));
    assert!(set(&d, "traceparent").unwrap().is_some());
}

const LEARNING: Circumstances = Circumstances {
    hop: Hop::Unknown,
    exporting: false,
    trusted: true,
};

/// While the hop is unknown the filter writes no id of its own: whatever it wrote, Zipkin (which
/// rewrites B3 and leaves traceparent) or OpenTelemetry (the other way round) would contradict.
#[test]
fn while_learning_nothing_of_the_filters_own_is_written_nor_told() {
    let cfg = Config::default();
    let d = decide_in(&[], &cfg, LEARNING);
    assert!(d.edits.is_empty(), "{:?}", d.edits);
    assert_eq!(d.forwarded, [None; 3]);
    assert_eq!(
        d.told_trace_id, None,
        "a tracer may start a trace nobody knows yet"
    );
    assert!(!d.own_span);
    // Malformed input still goes: never forwarded.
    let d = decide_in(
        &[("x-b3-traceid", "zz"), ("x-b3-spanid", S)],
        &cfg,
        LEARNING,
    );
    assert!(d.edits.iter().all(|e| e.value.is_none()), "{:?}", d.edits);
    assert_eq!(set(&d, "x-b3-traceid"), Some(None));
    assert_eq!(d.source, Source::Repaired);
}

/// The caller's own context goes on, and is told, only where every hop continues it (B3 and W3C
/// of the same trace); where one tracer would start another trace beside it, it goes.
#[test]
fn while_learning_the_callers_context_goes_on_only_where_every_hop_continues_it() {
    let cfg = Config::default();
    let b3 = [
        ("x-b3-traceid", T32),
        ("x-b3-spanid", S),
        ("x-b3-sampled", "1"),
    ];
    let d = decide_in(&b3, &cfg, LEARNING);
    assert_eq!(
        set(&d, "x-b3-traceid"),
        Some(None),
        "OpenTelemetry would add a trace"
    );
    assert!(d.edits.iter().all(|e| e.value.is_none()), "{:?}", d.edits);
    assert_eq!((d.forwarded, d.told_trace_id), ([None; 3], None));
    let tp = format!("00-{T32}-{S}-01");
    let d = decide_in(
        &[("traceparent", &tp), ("tracestate", "a=1")],
        &cfg,
        LEARNING,
    );
    assert_eq!(
        set(&d, "traceparent"),
        Some(None),
        "Zipkin would add a trace"
    );
    assert_eq!(set(&d, "tracestate"), Some(None));
    assert_eq!(d.told_trace_id, None);
    let mut both = b3.to_vec();
    both.push(("traceparent", &tp));
    let d = decide_in(&both, &cfg, LEARNING);
    assert!(d.edits.is_empty(), "{:?}", d.edits);
    assert_eq!(d.told_trace_id.map(|t| t.to_hex32()).as_deref(), Some(T32));
    // Two traces: OpenTelemetry would join the other: everything goes, nobody is told.
    let d = decide_in(
        &[
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
            ("traceparent", TP),
            ("tracestate", "a=1"),
        ],
        &cfg,
        LEARNING,
    );
    for name in ["traceparent", "tracestate", "x-b3-traceid"] {
        assert_eq!(set(&d, name), Some(None), "{name}");
    }
    assert_eq!(d.told_trace_id, None);
    // A lenient spelling of the caller's own context is written canonically, same ids.
    let d = decide_in(
        &[
            ("x-b3-traceid", &T32.to_uppercase()),
            ("x-b3-spanid", S),
            ("traceparent", &tp),
        ],
        &cfg,
        LEARNING,
    );
    assert_eq!(set(&d, "x-b3-traceid"), Some(Some(T32.into())));
    assert_eq!(set(&d, "traceparent"), None, "kept as it came");
    assert_eq!(d.told_trace_id.map(|t| t.to_hex32()).as_deref(), Some(T32));
    // A bare sampling decision is all that came: it goes on.
    let d = decide_in(&[("b3", "1")], &cfg, LEARNING);
    assert!(d.edits.is_empty(), "{:?}", d.edits);
}

/// An untrusted caller's context is removed while learning too, and nothing replaces it.
#[test]
fn while_learning_an_untrusted_callers_context_goes() {
    let at = Circumstances {
        trusted: false,
        ..LEARNING
    };
    let d = decide_in(
        &[("x-b3-traceid", T32), ("x-b3-spanid", S), ("b3", "1")],
        &Config::default(),
        at,
    );
    assert!(d.edits.iter().all(|e| e.value.is_none()), "{:?}", d.edits);
    assert_eq!(set(&d, "x-b3-traceid"), Some(None));
    assert_eq!(set(&d, "b3"), Some(None));
    assert!(d.restarted);
    assert_eq!(d.told_trace_id, None);
}

const MARKED: [(&str, char); 4] = [
    ("sampled", '9'),
    ("forced", 'a'),
    ("client", 'b'),
    ("not traced", '4'),
];

fn request_id(mark: char) -> String {
    format!("83733a38-4bd4-{mark}cc2-8e5b-1d5f6b7a8c9d")
}

/// `new_trace_sampling: envoy`: a new trace is sampled exactly where Envoy's connection manager
/// marked the request id; a caller that may not choose forces nothing.
#[test]
fn envoys_mark_samples_new_and_deferred_traces() {
    let cfg = Config {
        new_trace_sampling: Some(crate::config::NewTraceSampling::Envoy),
        ..Config::default()
    };
    for (what, mark) in MARKED {
        let rid = request_id(mark);
        let d = decide_in(&[("x-request-id", &rid)], &cfg, plain(false));
        assert_eq!(d.context.sampling.sampled(), mark != '4', "{what}");
        let deferred = [
            ("x-request-id", &*rid),
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
        ];
        let d = decide_in(&deferred, &cfg, plain(false));
        assert_eq!(
            d.context.sampling.sampled(),
            mark != '4',
            "{what}, deferred B3"
        );
        let d = untrusted(&[("x-request-id", &rid)], &cfg);
        assert_eq!(
            d.context.sampling.sampled(),
            mark == '9',
            "{what}, untrusted"
        );
    }
    let d = decide_in(&[], &cfg, plain(false));
    assert!(
        !d.context.sampling.sampled(),
        "no request id: nothing marked"
    );
}

/// An untrusted caller cannot make the next connection manager trace its request: the client
/// trace id and force-trace headers go, and a trace mark in the request id is cleared.
#[test]
fn an_untrusted_caller_forces_no_tracing_downstream() {
    let cfg = Config::default();
    for (what, mark) in MARKED {
        let rid = request_id(mark);
        let headers = [
            ("x-request-id", &*rid),
            ("x-client-trace-id", "abc"),
            ("x-envoy-force-trace", "true"),
        ];
        for at in [plain(false), LEARNING, on_tracer(TracerKind::OpenTelemetry)] {
            let d = decide_in(
                &headers,
                &cfg,
                Circumstances {
                    trusted: false,
                    ..at
                },
            );
            assert_eq!(set(&d, "x-client-trace-id"), Some(None), "{what}");
            assert_eq!(set(&d, "x-envoy-force-trace"), Some(None), "{what}");
            let want = (mark != '4').then(|| Some(request_id('4')));
            assert_eq!(set(&d, "x-request-id"), want, "{what}");
            // A trusted caller keeps all of it.
            let d = decide_in(&headers, &cfg, at);
            for name in ["x-client-trace-id", "x-envoy-force-trace", "x-request-id"] {
                assert_eq!(set(&d, name), None, "{what}: {name}");
            }
        }
    }
}

#[test]
fn beside_opentelemetry_b3_goes_and_a_joined_traceparent_is_told() {
    let otel = on_tracer(TracerKind::OpenTelemetry);
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
        d.told_trace_id.map(|t| t.to_hex32()).as_deref(),
        Some(crate::fixtures::W3C_TRACE)
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
    assert_eq!(d.told_trace_id, None);
    assert_eq!(set(&d, "b3"), Some(None));
    // A traceparent Envoy refuses: no span; the filter's repair flows and is told.
    let d = decide_in(&[("traceparent", "garbage")], &Config::default(), otel);
    let written = set(&d, "traceparent").unwrap().unwrap();
    assert!(written.contains(&d.told_trace_id.unwrap().to_hex32()));
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
    let d = decide_in(&headers, &cfg, plain(true));
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
    // A new trace's root is the filter's own span already: the same plan, and a span.
    let exporting = decide_in(&[], &cfg, plain(true));
    assert!(exporting.own_span);
    assert_eq!(
        run(&[], &cfg),
        Decision {
            own_span: false,
            ..exporting
        }
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
    use super::draw as draw_of;
    struct Draw(u64);
    impl IdSource for Draw {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }
    for (draw, want) in [
        (0, Sampling::Accept),
        (299_999, Sampling::Accept),
        (300_000, Sampling::Deny),
        (999_999, Sampling::Deny),
        // Modulo a million: 1_299_999 is a hit, 999_999_999 (999 by division) a miss.
        (1_299_999, Sampling::Accept),
        (999_999_999, Sampling::Deny),
    ] {
        assert_eq!(draw_of(300_000, &mut Draw(draw)), want, "draw {draw}");
    }
}
