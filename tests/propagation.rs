//! Issue "The filter, end to end": the built .wasm in a real Envoy (no tracer on the hop), real
//! HTTP requests; assertions on what the upstream received and on the response.

mod common;
use common::*;
use trace_inject::fixtures::{P, S, T16, T32, TRACED_REQUEST_ID, TRACEPARENT};

#[test]
fn no_headers_gets_a_new_complete_context_and_the_trace_id_back() {
    let hop = plain_hop("{}");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        let r = hop.get("/", &[]);
        assert_eq!(r.status, 200);
        let up = hop.upstream();
        let (trace, _) = assert_valid_context(&up);
        assert!(is_lower_hex(&trace, 32));
        assert_eq!(up.header("x-b3-sampled"), Some("1"), "sampled by default");
        assert_eq!(
            up.header("x-b3-parentspanid"),
            None,
            "a root span has no parent"
        );
        assert_eq!(up.header("b3"), None, "b3 single is not a default output");
        assert_eq!(r.header("x-trace-id").as_deref(), Some(trace.as_str()));
        assert_eq!(r.headers_named("x-trace-id").len(), 1);
        assert!(seen.insert(trace), "trace ids differ between requests");
    }
    hop.assert_counter("requests.injected", 5);
}

#[test]
fn valid_contexts_are_propagated_unchanged() {
    let hop = plain_hop("{}");

    // B3 multi, 128-bit, with parent and sampling: untouched; traceparent derived.
    let r = hop.get(
        "/",
        &[
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
            ("x-b3-parentspanid", P),
            ("x-b3-sampled", "1"),
        ],
    );
    let up = hop.upstream();
    assert_valid_context(&up);
    assert_eq!(up.header("x-b3-traceid"), Some(T32));
    assert_eq!(
        up.header("x-b3-spanid"),
        Some(S),
        "no new span id for a valid context"
    );
    assert_eq!(up.header("x-b3-parentspanid"), Some(P));
    assert_eq!(
        up.header("traceparent"),
        Some(format!("00-{T32}-{S}-01").as_str())
    );
    assert_eq!(r.header("x-trace-id").as_deref(), Some(T32));

    // B3 multi, 64-bit: kept 64-bit in B3, left-padded in W3C and x-trace-id.
    let r = hop.get(
        "/",
        &[
            ("x-b3-traceid", T16),
            ("x-b3-spanid", S),
            ("x-b3-sampled", "0"),
        ],
    );
    let up = hop.upstream();
    assert_eq!(up.header("x-b3-traceid"), Some(T16));
    assert_eq!(up.header("x-b3-sampled"), Some("0"));
    let padded = format!("0000000000000000{T16}");
    assert_eq!(
        up.header("traceparent"),
        Some(format!("00-{padded}-{S}-00").as_str())
    );
    assert_eq!(r.header("x-trace-id"), Some(padded));

    // B3 single with debug and parent: kept, and written out as B3 multi (debug = flags 1).
    let b3 = format!("{T32}-{S}-d-{P}");
    let r = hop.get("/", &[("b3", &b3)]);
    let up = hop.upstream();
    assert_valid_context(&up);
    assert_eq!(up.header("b3"), Some(b3.as_str()));
    assert_eq!(up.header("x-b3-traceid"), Some(T32));
    assert_eq!(up.header("x-b3-parentspanid"), Some(P));
    assert_eq!(up.header("x-b3-flags"), Some("1"));
    assert_eq!(
        up.header("x-b3-sampled"),
        None,
        "debug implies sampled: not sent twice"
    );
    assert_eq!(r.header("x-trace-id").as_deref(), Some(T32));

    // W3C with tracestate: both untouched; B3 derived.
    let r = hop.get(
        "/",
        &[
            ("traceparent", TRACEPARENT),
            ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ],
    );
    let up = hop.upstream();
    assert_valid_context(&up);
    assert_eq!(up.header("traceparent"), Some(TRACEPARENT));
    assert_eq!(
        up.header("tracestate"),
        Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    );
    assert_eq!(
        up.header("x-b3-traceid"),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(up.header("x-b3-spanid"), Some("00f067aa0ba902b7"));
    assert_eq!(up.header("x-b3-sampled"), Some("1"));
    assert_eq!(
        r.header("x-trace-id").as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );

    // A future traceparent version is parsed and downgraded to 00.
    hop.get(
        "/",
        &[(
            "traceparent",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later",
        )],
    );
    assert_eq!(hop.upstream().header("traceparent"), Some(TRACEPARENT));

    // Sampling-only B3 decides the new trace.
    hop.get("/", &[("b3", "0")]);
    let up = hop.upstream();
    assert_valid_context(&up);
    assert_eq!(up.header("x-b3-sampled"), Some("0"));

    hop.assert_counter("requests.b3", 2);
    hop.assert_counter("requests.b3_single", 1);
    hop.assert_counter("requests.w3c", 2);
    hop.assert_counter("malformed", 0);
}

#[test]
fn malformed_input_is_replaced_counted_and_never_forwarded() {
    let hop = plain_hop("{}");
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "short trace id",
            &[
                ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb612"),
                ("x-b3-spanid", S),
            ],
        ),
        // Upper-case B3 is continued (lower-cased): tests/conformance.rs.
        (
            "all-zero trace id",
            &[
                ("x-b3-traceid", "00000000000000000000000000000000"),
                ("x-b3-spanid", S),
            ],
        ),
        (
            "all-zero span id",
            &[("x-b3-traceid", T32), ("x-b3-spanid", "0000000000000000")],
        ),
        (
            "non-hex",
            &[
                ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb612z"),
                ("x-b3-spanid", S),
            ],
        ),
        ("trace id alone", &[("x-b3-traceid", T32)]),
        (
            "bad sampled",
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("x-b3-sampled", "yes"),
            ],
        ),
        (
            "bad b3 single",
            &[("b3", "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-x")],
        ),
        (
            "traceparent ff",
            &[(
                "traceparent",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
        ),
        (
            "traceparent zero trace",
            &[(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )],
        ),
        (
            "traceparent zero parent",
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            )],
        ),
        (
            "traceparent upper",
            &[(
                "traceparent",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            )],
        ),
        (
            "traceparent long 00",
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            )],
        ),
        (
            "traceparent garbage",
            &[
                ("traceparent", "hello"),
                ("tracestate", "congo=t61rcWkgMzE"),
            ],
        ),
    ];
    for (what, headers) in cases.iter() {
        let r = hop.get("/", headers);
        assert_eq!(r.status, 200, "{what}");
        let up = hop.upstream();
        let (trace, span) = assert_valid_context(&up);
        for (name, bad) in headers.iter() {
            for v in up.headers_named(name) {
                assert_ne!(v, *bad, "{what}: malformed {name} forwarded");
            }
        }
        // Every id-shaped piece of the input (lower-cased: an upper-case one continued would
        // still be the input's): the new context must be none of them.
        let pieces: Vec<String> = headers
            .iter()
            .flat_map(|(_, v)| v.split('-'))
            .map(str::to_ascii_lowercase)
            .filter(|p| p.len() == 16 || p.len() == 32)
            .collect();
        for p in &pieces {
            assert_ne!(
                &trace,
                &format!("{p:0>32}"),
                "{what}: a new trace, not the malformed one"
            );
            assert_ne!(&span, p, "{what}: a new span id");
        }
        assert_eq!(up.header("b3"), None, "{what}: malformed b3 removed");
        assert_eq!(
            up.header("tracestate"),
            None,
            "{what}: tracestate of an invalid traceparent dropped"
        );
        assert_eq!(r.header("x-trace-id"), Some(trace), "{what}");
    }
    hop.assert_counter("malformed", cases.len() as u64);
    hop.assert_counter("requests.repaired", cases.len() as u64);
    // The debug log names what was replaced (the log file is flushed every 50 ms).
    for needle in [
        "replaced malformed x-b3-*: x-b3-traceid is not 16 or 32 hex",
        "replaced malformed traceparent: traceparent version ff is forbidden",
        "replaced malformed b3: b3 sampling state is not 0, 1 or d",
    ] {
        hop.envoy
            .wait_for_log(needle, std::time::Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{needle}: {e}"));
    }
}

#[test]
fn non_utf8_bytes_never_break_the_filter() {
    let hop = plain_hop("{}");
    let names = TRACE_HEADERS;
    for name in names {
        let r = hop.get_raw(
            "/",
            &[
                (name.as_bytes(), b"\xff\xfe"),
                (b"x-b3-spanid", S.as_bytes()),
            ],
        );
        assert_eq!(r.status, 200, "{name}");
        assert_valid_context(&hop.upstream());
        assert!(r.header("x-trace-id").is_some());
    }
    // The issue's exact case, then ordinary traffic on the same worker.
    let r = hop.get_raw("/", &[(b"x-b3-traceid", b"\xff\xfe")]);
    assert_eq!(r.status, 200);
    let mut last = String::new();
    for _ in 0..3 {
        let r = hop.get("/", &[]);
        assert_eq!(r.status, 200);
        last = r
            .header("x-trace-id")
            .expect("later requests still filtered");
    }
    // Once the last request's line is written, a panic before it would be too.
    log_line_of(&hop.envoy, &last);
    assert!(
        !hop.envoy.log().contains("panicked"),
        "no panic in Envoy's log"
    );
}

#[test]
fn conflicting_formats_follow_the_precedence() {
    let headers = [
        ("x-b3-traceid", T32),
        ("x-b3-spanid", S),
        ("x-b3-sampled", "1"),
        ("traceparent", TRACEPARENT),
    ];
    let hop = plain_hop("{}");
    let r = hop.get("/", &headers);
    let up = hop.upstream();
    assert_valid_context(&up);
    assert_eq!(up.header("x-b3-traceid"), Some(T32), "B3 first by default");
    assert_eq!(
        up.header("traceparent"),
        Some(format!("00-{T32}-{S}-01").as_str())
    );
    assert_eq!(r.header("x-trace-id").as_deref(), Some(T32));
    // b3 single beats multi (the B3 spec's rule).
    let b3 = format!(
        "{}-{}-1",
        "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1"
    );
    hop.get(
        "/",
        &[("b3", &b3), ("x-b3-traceid", T32), ("x-b3-spanid", S)],
    );
    let up = hop.upstream();
    assert_eq!(
        up.header("x-b3-traceid"),
        Some("80f198ee56343ba864fe8b2a57d3eff7")
    );
    assert_eq!(up.header("x-b3-spanid"), Some("e457b5a2e4d86bd1"));
    assert_eq!(up.headers_named("x-b3-traceid").len(), 1);
    hop.assert_counter("conflicts", 2);
    drop(hop);

    let hop = plain_hop(r#"{"precedence": ["w3c", "b3-single", "b3"]}"#);
    let r = hop.get("/", &headers);
    let up = hop.upstream();
    assert_valid_context(&up);
    assert_eq!(up.header("traceparent"), Some(TRACEPARENT));
    assert_eq!(
        up.header("x-b3-traceid"),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(
        r.header("x-trace-id").as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
}

#[test]
fn envoy_local_replies_carry_the_trace_id() {
    let hop = plain_hop("{}");
    let r = hop.get("/", &[("host", "not-routed.example")]);
    assert_eq!(r.status, 404);
    assert!(is_lower_hex(
        &r.header("x-trace-id").expect("x-trace-id on 404"),
        32
    ));
    let r = hop.get("/unavailable", &[("x-b3-traceid", T32), ("x-b3-spanid", S)]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-trace-id").as_deref(), Some(T32));
    // An upstream error status passes through with the id too.
    let r = hop.get("/status/500", &[]);
    assert_eq!(r.status, 500);
    assert!(r.header("x-trace-id").is_some());
}

#[test]
fn configuration_changes_outputs_sampling_and_response_header() {
    let hop = plain_hop(
        r#"{"outputs": ["b3-single", "w3c"], "sampling_percent": 0, "response_header": "x-request-trace"}"#,
    );
    let r = hop.get("/", &[]);
    let up = hop.upstream();
    assert_eq!(up.header("x-b3-traceid"), None, "B3 multi not an output");
    let b3 = up.header("b3").expect("b3 single written").to_string();
    let tp = up
        .header("traceparent")
        .expect("traceparent written")
        .to_string();
    let f: Vec<&str> = b3.split('-').collect();
    assert_eq!(f.len(), 3, "{b3}");
    assert_eq!(f[2], "0", "sampling_percent 0: not sampled");
    // Not sampled; `random` (W3C Level 2): the filter's trace ids are random.
    assert_eq!(tp, format!("00-{}-{}-02", f[0], f[1]));
    assert_eq!(r.header("x-request-trace").as_deref(), Some(f[0]));
    assert_eq!(r.header("x-trace-id"), None);
    drop(hop);

    let hop = plain_hop(r#"{"response_header": null}"#);
    let r = hop.get("/", &[]);
    assert_eq!(r.header("x-trace-id"), None, "turned off");
    assert_valid_context(&hop.upstream());
}

#[test]
fn a_bad_plugin_config_is_refused_with_one_line_naming_the_field() {
    for (config, needle) in [
        (
            r#"{"sampling": 100}"#,
            "field `sampling`: unknown field `sampling`",
        ),
        (
            r#"{"sampling_percent": "all"}"#,
            "field `sampling_percent`: invalid type: string \"all\"",
        ),
        (
            r#"{"sampling_percent": 250}"#,
            "field `sampling_percent`: must be between 0 and 100",
        ),
        (
            r#"{"log": {"level": "loud"}}"#,
            "field `log.level`: unknown variant `loud`",
        ),
        (r#"not json"#, "invalid plugin configuration: not JSON"),
    ] {
        let echo = EchoServer::start();
        let err = match builder("envoy.yaml", 10000, 8080, free_port(), echo.port(), config).start()
        {
            Ok(_) => panic!("Envoy accepted the bad plugin config {config}"),
            Err(e) => e,
        };
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("invalid plugin configuration"))
            .collect();
        assert_eq!(lines.len(), 1, "one line for {config}: {err}");
        assert!(lines[0].contains(needle), "{config}: {}", lines[0]);
        assert!(
            lines[0].contains("[error][wasm]"),
            "logged at error: {}",
            lines[0]
        );
    }
}

/// Envoy marks `x-request-id` as traced (15th character `9`) when its tracer sampled a request.

#[test]
fn default_tracer_auto_on_a_plain_hop_learns_there_is_no_tracer() {
    // The default (tracer auto) where many users run it: a hop with no tracer. Before any
    // request has shown the hop, the filter writes nothing of its own and tells nothing, even
    // where Envoy marked the request traced.
    let hop = plain_hop(r#"{"tracer": "auto"}"#);
    let r = hop.get("/", &[("x-request-id", TRACED_REQUEST_ID)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-trace-id"), None, "not known yet: withheld");
    let up = hop.upstream();
    for name in ["x-b3-traceid", "b3", "traceparent"] {
        assert_eq!(
            up.header(name),
            None,
            "not known yet: no {name} from the filter"
        );
    }
    // It went upstream with nothing where any tracer would have written: no tracer here.
    hop.envoy
        .wait_for_log("this hop: no tracer ", std::time::Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    let r = hop.get(
        "/",
        &[
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
            ("x-b3-sampled", "1"),
        ],
    );
    assert_eq!(r.header("x-trace-id").as_deref(), Some(T32));
    assert_eq!(hop.upstream().header("x-b3-traceid"), Some(T32));
    let r = hop.get("/", &[]);
    let (trace, _) = assert_valid_context(&hop.upstream());
    assert_eq!(r.header("x-trace-id"), Some(trace), "a new trace, told");
    hop.assert_counter("requests.unknown_hop", 1);
}

#[test]
fn the_context_goes_upstream_from_http2_requests() {
    let hop = plain_hop("{}");
    let h2 = |headers: &[(&[u8], &[u8])]| {
        let before = hop.echo.received();
        let answer = trace_inject_devtools::h2::get(hop.port, "/", headers).expect("HTTP/2");
        assert_eq!(
            answer,
            trace_inject_devtools::h2::H2Answer::Status(Some(200))
        );
        assert!(hop.echo.received() > before, "reached the upstream");
        hop.echo.requests().pop().expect("upstream request")
    };
    // Injected.
    let (trace, _) = assert_valid_context(&h2(&[]));
    assert!(is_lower_hex(&trace, 32));
    // Continued, and repaired.
    let up = h2(&[
        (b"x-b3-traceid", T32.as_bytes()),
        (b"x-b3-spanid", S.as_bytes()),
    ]);
    assert_eq!(assert_valid_context(&up).0, T32);
    let up = h2(&[(b"traceparent", b"00-garbage")]);
    assert_valid_context(&up);
    assert_ne!(up.header("traceparent"), Some("00-garbage"));
    // The caller is told the id over HTTP/2 too (curl decodes the response headers).
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--http2-prior-knowledge",
        ])
        .args([
            "-H",
            &format!("x-b3-traceid: {T32}"),
            "-H",
            &format!("x-b3-spanid: {S}"),
        ])
        .arg(format!("http://127.0.0.1:{}/", hop.port))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/2 200"), "{text}");
    assert!(text.contains(&format!("\nx-trace-id: {T32}")), "{text}");
}

#[test]
fn sampling_percent_30_samples_about_30_percent() {
    let hop = plain_hop(r#"{"sampling_percent": 30}"#);
    let n = 400u32;
    let mut sampled = 0u32;
    for _ in 0..n {
        let r = hop.get("/", &[]);
        assert_eq!(r.status, 200);
        let up = hop.upstream();
        let (_, _) = assert_valid_context(&up);
        match up.header("x-b3-sampled") {
            Some("1") => sampled += 1,
            Some("0") => {}
            other => panic!("x-b3-sampled {other:?}"),
        }
    }
    // Binomial(400, 0.3): mean 120, sigma 9.17; 4 sigma either side (a false failure about
    // once in 16,000 runs): 84..=156. 0 % or 100 % (the setting ignored) is far outside.
    let (mean, sigma) = (f64::from(n) * 0.3, (f64::from(n) * 0.3 * 0.7).sqrt());
    let (lo, hi) = (mean - 4.0 * sigma, mean + 4.0 * sigma);
    eprintln!("sampling_percent 30: {sampled} of {n} sampled (bounds {lo:.0}..{hi:.0})");
    assert!(
        f64::from(sampled) >= lo && f64::from(sampled) <= hi,
        "{sampled} of {n} sampled at 30 %"
    );
    // An incoming decision is kept whatever the percentage.
    let r = hop.get(
        "/",
        &[
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
            ("x-b3-sampled", "1"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(hop.upstream().header("x-b3-sampled"), Some("1"));
}

#[test]
fn an_x_trace_id_the_upstream_returns_is_kept() {
    let hop = plain_hop("{}");
    let theirs = "0123456789abcdef0123456789abcdef";
    let r = hop.get(
        "/",
        &[("x-echo-reply-header", &format!("x-trace-id: {theirs}"))],
    );
    assert_eq!(r.status, 200);
    assert_valid_context(&hop.upstream());
    assert_eq!(
        r.headers_named("x-trace-id"),
        vec![theirs.to_string()],
        "the upstream's own x-trace-id, not replaced, not doubled"
    );
    // Without it, the filter's id (so the echo's header is what made the difference).
    let r = hop.get("/", &[]);
    let (trace, _) = assert_valid_context(&hop.upstream());
    assert_eq!(r.headers_named("x-trace-id"), vec![trace]);
}

/// The harness itself: `Hop::upstream` after a request that never reached the echo (a 404 from
/// Envoy) panics instead of returning the request before it.
#[test]
#[should_panic(expected = "the last request never reached the upstream")]
fn hop_upstream_refuses_a_request_that_never_arrived() {
    let hop = plain_hop("{}");
    assert_eq!(hop.get("/", &[]).status, 200);
    assert_eq!(hop.get("/", &[("host", "not-routed.example")]).status, 404);
    let _ = hop.upstream();
}

/// The core scenarios on two workers (as sidecars run), over many connections so that both
/// serve: each request leaves with one valid context, the caller is told that trace, a valid
/// incoming context is continued, and the counters of both workers add up.
#[test]
fn two_workers_core_scenarios() {
    let hop = plain_hop_with("{}", |b| b.concurrency(2));
    let kind = |client: u32, round: u32| (client + round) % 3;
    let results = concurrent_wave(hop.port, "core", 20, 10, |client, round| {
        match kind(client, round) {
            0 => vec![],
            1 => vec![
                ("x-b3-traceid".into(), T32.into()),
                ("x-b3-spanid".into(), S.into()),
            ],
            _ => vec![("traceparent".into(), "00-garbage".into())],
        }
    });
    let ups = hop.echo.requests();
    for r in &results {
        let path = &r.path;
        let told = r.response.headers_named("x-trace-id");
        assert_eq!(told.len(), 1, "{path}: {told:?}");
        let up = ups
            .iter()
            .find(|u| &u.path == path)
            .unwrap_or_else(|| panic!("{path} never reached the upstream"));
        let (trace, _) = assert_valid_context(up);
        assert_eq!(told.first(), Some(&trace), "{path}");
        if kind(r.client, r.round) == 1 {
            assert_eq!(trace, T32, "{path}: continued");
        } else {
            assert_ne!(trace, T32, "{path}");
        }
    }
    assert_every_worker_served(&hop.envoy, 2);
    // Each worker's VM hands over its own counts; Envoy sums them under one name.
    hop.wait_counted(200);
    let repaired = hop
        .envoy
        .stat("wasmcustom.trace_inject.requests.repaired")
        .unwrap_or(0);
    let expected = results
        .iter()
        .filter(|r| kind(r.client, r.round) == 2)
        .count() as u64;
    assert_eq!(repaired, expected, "requests.repaired over both workers");
}
