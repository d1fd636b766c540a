//! Proves, beside Envoy's real OpenTelemetry tracer (spans to the OTLP collector) — and, in the
//! gateway shape (`spawn_upstream_span`, Istio's gateways), beside both tracers — that the filter
//! is never wrong: `x-trace-id` is absent or the trace the collector holds for the request (or,
//! where the tracer makes no span, the repaired context the upstream received), never another,
//! never twice; and the app never receives two contexts that disagree. Default (`auto`) and
//! explicit (`"tracer": "opentelemetry"`) configurations, with and without the route's
//! `%TRACE_ID%`, for no context, B3 multi, b3 single, traceparent, traceparent beside B3 of
//! another trace, and malformed input of each.

mod common;
use common::*;
use std::time::Duration;
use trace_inject::fixtures::{S, T32, W3C_PARENT, W3C_TRACE};

/// `examples/envoy-sidecar-otel.yaml` in front of its own echo, reporting OTLP to `collector`.
fn otel_hop(plugin_config: &str, trace_id_route_header: bool) -> (Hop, Collector) {
    hop_on(
        "envoy-sidecar-otel.yaml",
        10002,
        9903,
        plugin_config,
        trace_id_route_header,
        false,
    )
}

/// An example sidecar config (`listener`/`admin` its ports) in front of its own echo, reporting
/// to `collector`; `gateway`: the tracer spawns an upstream span, as on Istio's gateways.
fn hop_on(
    example: &str,
    listener: u16,
    admin: u16,
    plugin_config: &str,
    trace_id_route_header: bool,
    gateway: bool,
) -> (Hop, Collector) {
    let echo = EchoServer::start();
    let collector = Collector::start();
    let mut b = example_builder(
        example,
        (listener, 0),
        admin,
        &echo,
        Some(&collector),
        Some(plugin_config),
    );
    if !envoy_has_value_tags() && example == "envoy-sidecar-otel.yaml" {
        // Envoy 1.36 has no `value:` custom tags (the span tags this test does not check).
        for key in ["service", "namespace", "version", "workload", "cluster"] {
            b = b.replace(
                &format!("value: \"%FILTER_STATE(wasm.trace_inject.{key}:PLAIN)%\""),
                "literal: {value: \"-\"}".to_string(),
            );
        }
    }
    if example == "envoy-sidecar-otel.yaml" {
        b = b.replace(
            "http://127.0.0.1:9411/v1/traces",
            format!("http://127.0.0.1:{}/v1/traces", collector.port()),
        );
    }
    if gateway {
        b = b.replace(
            "            random_sampling: {value: 100}\n",
            "            random_sampling: {value: 100}\n            spawn_upstream_span: true\n"
                .to_string(),
        );
    }
    if !trace_id_route_header {
        b = b.replace(
            "key: x-trace-id, value:",
            "key: x-envoy-trace-id, value:".to_string(),
        );
    }
    let envoy = b
        .start()
        .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));
    (Hop::new(envoy, echo), collector)
}

/// (trace id as 32 hex, span id) of every trace format the upstream received, read by splitting
/// the values (not by the filter's parsers).
fn positions(up: &RecordedRequest) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    if let (Some(t), Some(s)) = (up.header("x-b3-traceid"), up.header("x-b3-spanid")) {
        out.push((
            "x-b3-*",
            format!("{:0>32}", t.to_lowercase()),
            s.to_lowercase(),
        ));
    }
    if let Some(b3) = up.header("b3") {
        let f: Vec<&str> = b3.split('-').collect();
        if f.len() >= 2 {
            out.push((
                "b3",
                format!("{:0>32}", f[0].to_lowercase()),
                f[1].to_lowercase(),
            ));
        }
    }
    if let Some(tp) = up.header("traceparent") {
        let f: Vec<&str> = tp.split('-').collect();
        if f.len() >= 3 {
            out.push(("traceparent", f[1].to_lowercase(), f[2].to_lowercase()));
        }
    }
    out
}

fn cases() -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    vec![
        ("no context", vec![]),
        (
            "B3 multi",
            vec![
                ("x-b3-traceid", T32.into()),
                ("x-b3-spanid", S.into()),
                ("x-b3-sampled", "1".into()),
            ],
        ),
        ("b3 single", vec![("b3", format!("{T32}-{S}-1"))]),
        (
            "traceparent",
            vec![("traceparent", format!("00-{W3C_TRACE}-{W3C_PARENT}-01"))],
        ),
        (
            "traceparent and B3 of another trace",
            vec![
                ("traceparent", format!("00-{W3C_TRACE}-{W3C_PARENT}-01")),
                ("x-b3-traceid", T32.into()),
                ("x-b3-spanid", S.into()),
            ],
        ),
        (
            "malformed B3",
            vec![
                ("x-b3-traceid", format!("{T32}ab")),
                ("x-b3-spanid", S.into()),
            ],
        ),
        ("malformed b3", vec![("b3", format!("{T32}-{S}-x"))]),
        (
            "malformed traceparent",
            vec![(
                "traceparent",
                format!("00-{W3C_TRACE}-{W3C_PARENT}-01-extra"),
            )],
        ),
    ]
}

/// Inputs for which the OpenTelemetry tracer makes no span (measured): a traceparent it refuses.
const OTEL_NO_SPAN: &[&str] = &["malformed traceparent"];
/// ... and the Zipkin tracer: B3 it cannot parse (measured: src/tracer/zipkin.rs).
const ZIPKIN_NO_SPAN: &[&str] = &["malformed B3", "malformed b3"];

fn check_hop(config: &str, route_header: bool) {
    let (hop, collector) = otel_hop(config, route_header);
    check_requests(&hop, &collector, config, route_header, OTEL_NO_SPAN);
}

fn check_requests(
    hop: &Hop,
    collector: &Collector,
    config: &str,
    route_header: bool,
    no_span: &[&str],
) {
    let mut told = Vec::new();
    for round in 0..2 {
        for (what, headers) in cases() {
            let what = format!("{config} route-header={route_header} round {round}: {what}");
            let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let before = hop.echo.requests().len();
            let r = hop.get("/", &h);
            assert_eq!(r.status, 200, "{what}");
            assert_eq!(
                hop.echo.requests().len(),
                before + 1,
                "{what}: reached the app"
            );
            let up = hop.upstream();
            let found = positions(&up);
            // One context: every format present names the same position.
            for (name, trace, span) in &found {
                assert_eq!(
                    (trace, span),
                    (&found[0].1, &found[0].2),
                    "{what}: {name} disagrees with {}: {found:?}",
                    found[0].0
                );
            }
            let ids = r.headers_named("x-trace-id");
            assert!(ids.len() <= 1, "{what}: x-trace-id twice: {ids:?}");
            if let Some(id) = ids.first() {
                let upstream_trace = found.first().map(|(_, t, _)| t.clone());
                assert_eq!(
                    Some(id.clone()),
                    upstream_trace,
                    "{what}: x-trace-id is not the trace the app received ({found:?})"
                );
                told.push((what.clone(), id.clone(), headers.clone()));
            }
        }
    }
    // Every id told is held by the collector, except where the tracer made no span (input it
    // refuses): there the filter's repaired context flowed, for the next hop.
    for (what, id, headers) in told {
        if no_span.iter().any(|case| what.ends_with(case)) {
            continue;
        }
        let spans = collector.wait_for_trace(&id, 1, Duration::from_secs(15));
        assert!(
            !spans.is_empty(),
            "{what}: told {id}, the collector holds no span of it ({headers:?})"
        );
    }
}

#[test]
fn explicit_opentelemetry_with_and_without_the_route_header() {
    check_hop(r#"{"tracer": "opentelemetry"}"#, true);
    check_hop(r#"{"tracer": "opentelemetry"}"#, false);
}

#[test]
fn default_auto_with_and_without_the_route_header() {
    check_hop("{}", true);
    check_hop("{}", false);
}

#[test]
fn auto_detects_the_opentelemetry_tracer_once_and_says_so() {
    let (hop, _collector) = otel_hop("{}", false);
    for _ in 0..3 {
        hop.get("/", &[]);
    }
    let log = hop
        .envoy
        .wait_for_log("this hop: opentelemetry ", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(log.matches("this hop: opentelemetry ").count(), 1, "{log}");
    hop.assert_counter("tracer_detected", 1);
    // Known now: a joined traceparent is told; B3 never reaches the app beside it.
    let r = hop.get(
        "/",
        &[
            ("traceparent", &format!("00-{W3C_TRACE}-{W3C_PARENT}-01")),
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
        ],
    );
    assert_eq!(r.header("x-trace-id").as_deref(), Some(W3C_TRACE));
    let up = hop.upstream();
    assert_eq!(up.header("x-b3-traceid"), None);
    assert!(up
        .header("traceparent")
        .is_some_and(|t| t.contains(W3C_TRACE)));
}

#[test]
fn gateway_shape_beside_both_tracers() {
    let otel = ("envoy-sidecar-otel.yaml", 10002, 9903, OTEL_NO_SPAN);
    let zipkin = (sidecar_example(), 10001, 9902, ZIPKIN_NO_SPAN);
    for ((example, listener, admin, no_span), config) in [
        (otel, r#"{"tracer": "opentelemetry"}"#),
        (otel, "{}"),
        (zipkin, r#"{"tracer": "zipkin"}"#),
        (zipkin, "{}"),
    ] {
        let (hop, collector) = hop_on(example, listener, admin, config, true, true);
        let what = format!("{example} gateway {config}");
        check_requests(&hop, &collector, &what, true, no_span);
    }
}
