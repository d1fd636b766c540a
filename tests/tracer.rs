//! Issue "One trace id, everywhere": beside Envoy's own Zipkin tracer, and across chained hops,
//! the response header, the upstream's headers and the collected spans agree — or the header is
//! absent; never a wrong or duplicated `x-trace-id`.

mod common;
use common::*;
use std::time::Duration;
use trace_inject::fixtures::{S, T32, TRACEPARENT, W3C_TRACE};

const SPAN_WAIT: Duration = Duration::from_secs(15);

/// What the upstream's headers say the trace is (B3 single first, as Envoy writes it back where
/// it came in), padded to 32 hex; and that any traceparent agrees with it.
fn upstream_trace(up: &RecordedRequest) -> Option<String> {
    let b3_trace = match up.header("b3") {
        Some(b3) => b3.split('-').next().map(str::to_string),
        None => up.header("x-b3-traceid").map(str::to_string),
    }
    .map(|t| format!("{t:0>32}"));
    if let (Some(t), Some(tp)) = (&b3_trace, up.header("traceparent")) {
        assert_eq!(
            tp.split('-').nth(1),
            Some(t.as_str()),
            "traceparent disagrees with B3 upstream: {up:?}"
        );
    }
    b3_trace
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// The caller is told this id, the upstream carries it, the collector holds it.
    Reported(&'static str),
    /// Envoy's tracer started its own trace: the caller is told that one (via %TRACE_ID%), or nothing.
    TracerRoot,
    /// The tracer makes no span: the filter's repaired context flows and is reported.
    FilterContext,
}

/// One request through a tracer hop; asserts the agreement rules and returns the reported id.
fn check(
    hop: &SidecarHop,
    what: &str,
    headers: &[(&str, &str)],
    expect: Expect,
    trace_id_header: bool,
) -> Option<String> {
    let r = hop.get("/", headers);
    assert_eq!(r.status, 200, "{what}");
    let up = hop.upstream();
    let carried = upstream_trace(&up);
    let told = r.headers_named("x-trace-id");
    assert!(told.len() <= 1, "{what}: duplicated x-trace-id {told:?}");
    let told = told.first().cloned();
    if let Some(t) = &told {
        assert!(is_lower_hex(t, 32), "{what}: {t}");
        assert_eq!(
            Some(t),
            carried.as_ref(),
            "{what}: x-trace-id is the trace the upstream carries"
        );
    }
    match expect {
        Expect::Reported(id) => {
            assert_eq!(told.as_deref(), Some(id), "{what}");
            let spans = hop.collector.wait_for_trace(id, 1, SPAN_WAIT);
            assert!(!spans.is_empty(), "{what}: the collector holds trace {id}");
        }
        Expect::TracerRoot => {
            if trace_id_header {
                let t = told
                    .clone()
                    .unwrap_or_else(|| panic!("{what}: %TRACE_ID% returns the tracer's id"));
                assert!(
                    !hop.collector.wait_for_trace(&t, 1, SPAN_WAIT).is_empty(),
                    "{what}: collected"
                );
            } else {
                assert_eq!(
                    told, None,
                    "{what}: the filter cannot know the tracer's new id: no header"
                );
            }
        }
        Expect::FilterContext => {
            let t = told
                .clone()
                .unwrap_or_else(|| panic!("{what}: the repaired context is reported"));
            assert_valid_context(&up);
            // Positive signal first: a later request Envoy does trace has its span collected
            // (spans are posted one at a time, in order), then none arrived under `t`.
            let mark = format!("{:032x}", rand_id());
            let m = hop.get("/", &[("x-b3-traceid", &mark), ("x-b3-spanid", S)]);
            assert_eq!(m.status, 200);
            assert!(
                !hop.collector.wait_for_trace(&mark, 1, SPAN_WAIT).is_empty(),
                "{what}: the marker request's span"
            );
            assert!(
                hop.collector.trace(&t).is_empty(),
                "{what}: Envoy made no span, so none under {t}"
            );
        }
    }
    told
}

/// A fresh non-zero id, different each call.
fn rand_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(1);
    (u128::from(h.finish()) << 64) | u128::from(h.finish() | 1)
}

/// (what, request headers, expected outcome).
type Case = (&'static str, Vec<(&'static str, &'static str)>, Expect);

fn tracer_hop_cases() -> Vec<Case> {
    let b3_single: &'static str = Box::leak(format!("{T32}-{S}-1").into_boxed_str());
    vec![
        ("no context", vec![], Expect::TracerRoot),
        (
            "b3 multi",
            vec![
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "1"),
            ],
            Expect::Reported(T32),
        ),
        ("b3 single", vec![("b3", b3_single)], Expect::Reported(T32)),
        (
            "b3 upper case (Envoy joins it lower-cased)",
            vec![
                ("x-b3-traceid", "463AC35C9F6413AD48485A3953BB6124"),
                ("x-b3-spanid", S),
            ],
            Expect::Reported(T32),
        ),
        (
            "b3 17 hex (Envoy makes no span)",
            vec![("x-b3-traceid", "463ac35c9f6413ad4"), ("x-b3-spanid", S)],
            Expect::FilterContext,
        ),
        (
            "b3 non-hex",
            vec![
                ("x-b3-traceid", "zzzac35c9f6413ad48485a3953bb6124"),
                ("x-b3-spanid", S),
            ],
            Expect::FilterContext,
        ),
        (
            "malformed b3 single",
            vec![("b3", "nonsense")],
            Expect::FilterContext,
        ),
        (
            "trace id alone",
            vec![("x-b3-traceid", T32)],
            Expect::TracerRoot,
        ),
        (
            "conflicting b3 and traceparent",
            vec![
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("traceparent", TRACEPARENT),
            ],
            Expect::Reported(T32),
        ),
    ]
}

#[test]
fn tracer_hop_explicit_config_with_trace_id_route_header() {
    let hop = sidecar_hop(
        Some(
            r#"{"tracer": "zipkin", "envoy_trace_context_option": "USE_B3_WITH_W3C_PROPAGATION"}"#,
        ),
        |b| b,
    );
    hop.learn("zipkin (USE_B3_WITH_W3C_PROPAGATION)");
    let mut cases = tracer_hop_cases();
    cases.push((
        "traceparent (W3C propagation on)",
        vec![
            ("traceparent", TRACEPARENT),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
        Expect::Reported(W3C_TRACE),
    ));
    for (what, headers, expect) in &cases {
        check(&hop, what, headers, *expect, true);
    }
    // The W3C join keeps the tracestate of the trace it joins.
    hop.get(
        "/",
        &[
            ("traceparent", TRACEPARENT),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
    );
    assert_eq!(
        hop.upstream().header("tracestate"),
        Some("congo=t61rcWkgMzE")
    );
    // A stale x-b3-* beside a b3 single header is not forwarded. Envoy 1.40 writes the b3 single
    // header back and no x-b3-*; 1.36 to 1.39 write x-b3-* of the joined trace and leave the
    // incoming b3 header as it came (measured, docs/envoy-versions.md).
    hop.get(
        "/",
        &[
            ("b3", &format!("{T32}-{S}-1")),
            ("x-b3-traceid", "48485a3953bb6124"),
            ("x-b3-spanid", S),
        ],
    );
    let want = match trace_inject_devtools::envoy_version() {
        Ok(v) if v < (1, 40, 0) => Some(T32),
        _ => None,
    };
    assert_eq!(hop.upstream().header("x-b3-traceid"), want);
    // The configured tracer is confirmed by the first request, not taken on its word; what
    // confirms it is said at info, not as a warning. Every request counted first.
    hop.wait_counted(hop.echo.received());
    hop.assert_counter("tracer_detected", 1);
    assert!(
        !hop.envoy.log().contains("[warning][wasm]"),
        "{}",
        hop.envoy.log()
    );
}

#[test]
fn tracer_hop_explicit_config_without_route_header_and_b3_only() {
    // Envoy's tracer with USE_B3 (Istio's default) and no %TRACE_ID% header: only the filter can
    // tell the caller, and it must stay silent where it cannot know.
    let hop = sidecar_hop(Some(r#"{"tracer": "envoy"}"#), |b| {
        b.replace(
            "trace_context_option: USE_B3_WITH_W3C_PROPAGATION",
            "trace_context_option: USE_B3".to_string(),
        )
        .replace(
            "key: x-trace-id, value:",
            "key: x-envoy-trace-id, value:".to_string(),
        )
    });
    let mut cases = tracer_hop_cases();
    cases.push((
        "traceparent (USE_B3: a new trace)",
        vec![("traceparent", TRACEPARENT)],
        Expect::TracerRoot,
    ));
    for (what, headers, expect) in &cases {
        check(&hop, what, headers, *expect, false);
    }
    // The traceparent Envoy leaves stale would contradict its B3: removed.
    hop.get("/", &[("traceparent", TRACEPARENT)]);
    assert_eq!(hop.upstream().header("traceparent"), None);
    // A 404 (no route: no %TRACE_ID% either) still gets the id the filter knows.
    let r = hop.get(
        "/",
        &[
            ("host", "nowhere.example"),
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
        ],
    );
    assert_eq!(
        (r.status, r.headers_named("x-trace-id")),
        (404, vec![T32.to_string()])
    );
    let r = hop.get("/", &[("host", "nowhere.example")]);
    assert_eq!((r.status, r.header("x-trace-id")), (404, None));
}

#[test]
fn tracer_hop_default_config_detects_the_tracer() {
    let hop = sidecar_hop(Some("{}"), |b| {
        b.replace(
            "key: x-trace-id, value:",
            "key: x-envoy-trace-id, value:".to_string(),
        )
    });
    hop.learn("zipkin");
    for (what, headers, expect) in tracer_hop_cases() {
        check(&hop, what, &headers, expect, false);
    }
    hop.assert_counter("tracer_detected", 1);
    let log = hop.envoy.log();
    assert!(
        log.contains("[info][wasm]") && !log.contains("[warning][wasm]"),
        "{log}"
    );
}

/// A configured tracer the hop does not show is reported once, naming the setting and what the
/// hop showed, and the filter follows the hop: here Istio's OpenTelemetry setting on a Zipkin hop.
#[test]
fn a_configured_tracer_the_hop_contradicts_is_reported_and_not_followed() {
    let hop = sidecar_hop(Some(r#"{"tracer": "opentelemetry"}"#), |b| {
        b.replace(
            "key: x-trace-id, value:",
            "key: x-envoy-trace-id, value:".to_string(),
        )
    });
    // The first completed request shows the hop; what it shows is said as the warning.
    assert_eq!(hop.get("/", &[]).status, 200);
    let warning = hop
        .envoy
        .wait_for_log("but this hop shows", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warning.contains("[warning][wasm]")
            && warning.contains("says \"tracer\": \"opentelemetry\"")
            && warning.contains("this hop shows zipkin"),
        "{warning}"
    );
    for (what, headers, expect) in tracer_hop_cases() {
        check(&hop, what, &headers, expect, false);
    }
    assert_eq!(
        hop.envoy.log().matches("but this hop shows").count(),
        1,
        "once"
    );
}

#[test]
fn chain_plain_edge_then_tracer_sidecar_is_one_trace() {
    // curl -> Envoy A (filter, no tracer) -> Envoy B (filter + Zipkin, like a backend sidecar) -> echo
    let b = sidecar_hop(None, |b| b);
    let a = builder("envoy.yaml", 10000, 8080, 0, b.port, "{}")
        .start()
        .expect("Envoy A");
    let a_port = a.port();
    for (what, headers) in [
        ("plain curl", vec![]),
        ("b3", vec![("x-b3-traceid", T32), ("x-b3-spanid", S)]),
        ("malformed", vec![("traceparent", "ff-00-00")]),
    ] {
        let raw: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(n, v): &(&str, &str)| (n.as_bytes(), v.as_bytes()))
            .collect();
        let r = http::request(a_port, "GET", "/", &raw).expect("request through A");
        assert_eq!(r.status, 200, "{what}");
        let told = r.headers_named("x-trace-id");
        assert_eq!(
            told.len(),
            1,
            "{what}: one x-trace-id, not one per hop: {told:?}"
        );
        let id = &told[0];
        let up = b.upstream();
        assert_eq!(
            upstream_trace(&up).as_ref(),
            Some(id),
            "{what}: the app behind B is in that trace"
        );
        let spans = b.collector.wait_for_trace(id, 1, SPAN_WAIT);
        assert!(
            !spans.is_empty(),
            "{what}: B's tracer joined the context A wrote"
        );
        if what == "b3" {
            assert_eq!(id, T32);
        }
    }
    drop(a);
}

#[test]
fn chain_istio_shape_both_hops_traced() {
    // curl -> A (filter + tracer: the client's sidecar) -> B (filter + tracer: the server's) -> echo
    let b = sidecar_hop(None, |b| b);
    let a = sidecar_builder(&b.echo, &b.collector, 0, None)
        .replace(
            &format!("port_value: {}}}", b.echo.port()),
            format!("port_value: {}}}", b.port),
        )
        .start()
        .expect("Envoy A");
    let a_port = a.port();
    let r = http::request(a_port, "GET", "/", &[]).expect("request through A");
    assert_eq!(r.status, 200);
    let told = r.headers_named("x-trace-id");
    assert_eq!(told.len(), 1, "{told:?}");
    let spans = b.collector.wait_for_trace(&told[0], 2, SPAN_WAIT);
    assert!(
        spans.len() >= 2,
        "both hops' spans in the trace the caller was told: {spans:?}"
    );
    assert_eq!(upstream_trace(&b.upstream()).as_ref(), Some(&told[0]));
    let r = http::request(
        a_port,
        "GET",
        "/",
        &[
            (b"x-b3-traceid", T32.as_bytes()),
            (b"x-b3-spanid", S.as_bytes()),
        ],
    )
    .unwrap();
    assert_eq!(r.headers_named("x-trace-id"), vec![T32.to_string()]);
    assert!(b.collector.wait_for_trace(T32, 2, SPAN_WAIT).len() >= 2);
    drop(a);
}

/// The model of Envoy's Zipkin tracer (src/tracer/zipkin.rs), row by row against the real one:
/// the model is what the filter decides by, so a row it gets wrong is a wrong `x-trace-id`.
#[test]
fn zipkin_tracer_model_matches_the_real_envoy() {
    use trace_inject::context::Format;
    use trace_inject::headers::TraceHeaders;
    use trace_inject::tracer::{Outcome, TracerKind};
    let hop = sidecar_hop(Some(r#"{"tracer": "envoy"}"#), |b| {
        b.replace(
            "trace_context_option: USE_B3_WITH_W3C_PROPAGATION",
            "trace_context_option: USE_B3".to_string(),
        )
    });
    let model = TracerKind::Zipkin { reads_w3c: false };
    let rows: &[(&str, &[(&str, &str)])] = &[
        (
            "0x prefix",
            &[("x-b3-traceid", "0x463ac35c9f6413ad"), ("x-b3-spanid", S)],
        ),
        (
            "0x span id",
            &[("x-b3-traceid", T32), ("x-b3-spanid", "0xa2fb4a1d1a96d312")],
        ),
        (
            "short ids",
            &[("x-b3-traceid", "abc"), ("x-b3-spanid", "def")],
        ),
        (
            "upper case",
            &[("x-b3-traceid", "463AC35C9F6413AD"), ("x-b3-spanid", S)],
        ),
        (
            "bad parent",
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("x-b3-parentspanid", "zz"),
            ],
        ),
        (
            "b3: 0 beside x-b3-*",
            &[("b3", "0"), ("x-b3-traceid", T32), ("x-b3-spanid", S)],
        ),
        (
            "b3: 1 beside x-b3-*",
            &[("b3", "1"), ("x-b3-traceid", T32), ("x-b3-spanid", S)],
        ),
        (
            "b3 17 hex",
            &[("x-b3-traceid", "463ac35c9f6413ad4"), ("x-b3-spanid", S)],
        ),
        ("traceparent only (USE_B3)", &[("traceparent", TRACEPARENT)]),
    ];
    for (what, headers) in rows {
        let prediction = model.predict(&TraceHeaders::collect(
            headers.iter().map(|(n, v)| (*n, v.as_bytes())),
        ));
        let r = hop.get("/", headers);
        assert_eq!(r.status, 200, "{what}");
        let up = hop.upstream();
        let carried = upstream_trace(&up).unwrap_or_else(|| panic!("{what}: no trace upstream"));
        let inputs: Vec<String> = headers
            .iter()
            .flat_map(|(_, v)| v.split('-'))
            .map(|p| format!("{:0>32}", p.trim_start_matches("0x").to_ascii_lowercase()))
            .collect();
        let b3_single_written = prediction.writes.contains(Format::B3Single);
        match prediction.outcome {
            Outcome::Join(id) => {
                assert_eq!(
                    carried,
                    format!("{id:032x}"),
                    "{what}: the joined trace upstream"
                );
                assert_eq!(
                    up.header("b3").is_some(),
                    b3_single_written,
                    "{what}: {up:?}"
                );
                assert!(
                    !hop.collector
                        .wait_for_trace(&carried, 1, SPAN_WAIT)
                        .is_empty(),
                    "{what}: Envoy's span in the joined trace"
                );
            }
            Outcome::NewRoot => {
                assert!(
                    !inputs.contains(&carried),
                    "{what}: a new trace, got {carried}"
                );
                let sampled = !headers.contains(&("b3", "0"));
                if sampled {
                    assert!(
                        !hop.collector
                            .wait_for_trace(&carried, 1, SPAN_WAIT)
                            .is_empty(),
                        "{what}: Envoy's new root collected"
                    );
                } else {
                    assert_no_span_after_a_marker(&hop, &carried, what);
                }
            }
            Outcome::NoSpan => {
                assert_valid_context(&up);
                assert_no_span_after_a_marker(&hop, &carried, what);
            }
        }
    }
}

/// No span under `trace` — asserted once a later, traced request's span has arrived.
fn assert_no_span_after_a_marker(hop: &SidecarHop, trace: &str, what: &str) {
    let mark = format!("{:032x}", rand_id());
    assert_eq!(
        hop.get("/", &[("x-b3-traceid", &mark), ("x-b3-spanid", S)])
            .status,
        200
    );
    assert!(
        !hop.collector.wait_for_trace(&mark, 1, SPAN_WAIT).is_empty(),
        "{what}: the marker's span"
    );
    assert!(
        hop.collector.trace(trace).is_empty(),
        "{what}: a span under {trace}"
    );
}

/// The default configuration beside Envoy's tracer with two workers (as sidecars run), traffic
/// on many connections so that both workers serve it and each learns the hop on its own: every
/// `x-trace-id` told is the trace the upstream carries and the collector holds, or absent.
/// While a worker has not learnt the hop yet (its first requests are in flight), a caller's own
/// trace may go untold (the filter cannot know which tracer joins it); once both have learnt,
/// every caller with its own context is told it.
#[test]
fn two_workers_default_config_beside_the_tracer_never_tell_a_wrong_id() {
    let hop = sidecar_hop(Some("{}"), |b| {
        b.replace(
            "key: x-trace-id, value:",
            "key: x-envoy-trace-id, value:".to_string(),
        )
        .concurrency(2)
    });
    // Learning: concurrent first requests on both workers. Never wrong; untold allowed.
    let learning = two_worker_wave(&hop, "learn", 10);
    // One worker learns it, both know it (shared data): counted once, or twice where both
    // workers saw it at the same moment.
    let detected = || {
        hop.envoy
            .stat("wasmcustom.trace_inject.tracer_detected")
            .unwrap_or(0)
    };
    let learnt = wait_until(Duration::from_secs(10), || detected() >= 1);
    assert!(learnt, "the tracer learnt");
    assert_every_worker_served(&hop.envoy, 2);
    // Learnt: every caller with its own context is told it.
    let learnt = two_worker_wave(&hop, "learnt", 6);
    let ups = hop.echo.requests();
    let untold_while_learning = check_told(&hop, &ups, &learning);
    assert_eq!(
        check_told(&hop, &ups, &learnt),
        0,
        "once learnt, every caller with its own context told it"
    );
    eprintln!(
        "two workers: {untold_while_learning} of {} callers with a context untold while learning",
        learning.len() / 2
    );
    assert!((1..=2).contains(&detected()), "{}", detected());
}

/// 20 clients, `rounds` requests each; half without a context, half with one of their own.
fn two_worker_wave(hop: &SidecarHop, tag: &str, rounds: u32) -> Vec<WaveRequest> {
    concurrent_wave(hop.port, tag, 20, rounds, |client, round| {
        if round % 2 == 0 {
            return vec![];
        }
        let own = format!("{:016x}{client:08x}{round:08x}", rand_id() as u64);
        vec![
            ("x-b3-traceid".into(), own),
            ("x-b3-spanid".into(), S.into()),
        ]
    })
}

/// Every id told is the one the upstream carried and the collector holds (and the caller's own,
/// where it had one). Returns how many callers with their own context were not told.
fn check_told(hop: &SidecarHop, ups: &[RecordedRequest], results: &[WaveRequest]) -> usize {
    let mut untold = 0;
    for r in results {
        let path = &r.path;
        let told = r.response.headers_named("x-trace-id");
        assert!(told.len() <= 1, "{path}: {told:?}");
        let mine = r
            .headers
            .iter()
            .find(|(n, _)| n == "x-b3-traceid")
            .map(|(_, v)| v);
        let up = ups
            .iter()
            .find(|u| &u.path == path)
            .unwrap_or_else(|| panic!("{path} never reached the upstream"));
        let carried = upstream_trace(up);
        match (told.first(), mine) {
            (Some(t), _) => {
                assert_eq!(
                    Some(t),
                    carried.as_ref(),
                    "{path}: told what the upstream carries"
                );
                if let Some(m) = mine {
                    assert_eq!(t, m, "{path}: Envoy joined the caller's trace");
                }
                assert!(
                    !hop.collector.wait_for_trace(t, 1, SPAN_WAIT).is_empty(),
                    "{path}: the collector holds the trace told"
                );
            }
            (None, Some(_)) => untold += 1,
            (None, None) => {}
        }
    }
    untold
}
