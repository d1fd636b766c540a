//! Under a mesh's real defaults: Istio 1.28's sidecar HCM (no tracer provider, Zipkin,
//! OpenTelemetry; examples/istio-sidecar*.yaml), two workers, the first requests a concurrent
//! burst with no warm-up, at Istio's 1 % sampling and at 100 %, with the shipped
//! wasm-plugin.yaml's pluginConfig and with `{}`: no request leaves with two traces, no caller is
//! told a trace id other than the one its request went on in (beside a tracer: the one the
//! collector holds), and new traces are sampled as Envoy decided.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;
use trace_inject::fixtures::S;

use common::oracle::{self, Extraction};
use common::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    NoProvider,
    Zipkin,
    OpenTelemetry,
}

impl Shape {
    const ALL: [Shape; 3] = [Shape::NoProvider, Shape::Zipkin, Shape::OpenTelemetry];

    /// The fixture, its listener port and its admin port.
    fn example(self) -> (&'static str, u16, u16) {
        match self {
            Shape::NoProvider => ("istio-sidecar.yaml", 10003, 9904),
            Shape::Zipkin => ("istio-sidecar-zipkin.yaml", 10004, 9905),
            Shape::OpenTelemetry => ("istio-sidecar-otel.yaml", 10005, 9906),
        }
    }

    /// What the filter says it learnt there.
    fn shows(self) -> &'static str {
        match self {
            Shape::NoProvider => "no tracer",
            Shape::Zipkin => "zipkin",
            Shape::OpenTelemetry => "opentelemetry",
        }
    }
}

/// The shipped wasm-plugin.yaml's `spec.pluginConfig`, as the JSON Istio hands the filter.
fn shipped_plugin_config() -> String {
    let text = std::fs::read_to_string("wasm-plugin.yaml").expect("wasm-plugin.yaml");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("YAML");
    let config = &docs[0]["spec"]["pluginConfig"];
    assert!(
        !config.is_badvalue(),
        "spec.pluginConfig in wasm-plugin.yaml"
    );
    yaml_to_json(config).to_string()
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> serde_json::Value {
    use serde_json::Value;
    use yaml_rust2::Yaml;
    match y {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().expect("string keys").to_string(),
                        yaml_to_json(v),
                    )
                })
                .collect(),
        ),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => Value::from(r.parse::<f64>().expect("a number")),
        Yaml::Boolean(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

/// The configurations users run: the shipped file's and the defaults.
fn configs() -> [(&'static str, String); 2] {
    [
        ("wasm-plugin.yaml", shipped_plugin_config()),
        ("{}", "{}".to_string()),
    ]
}

/// An Istio-shaped sidecar with `workers` workers at `sampling` percent, ready, no request sent.
fn istio_hop(shape: Shape, sampling: u32, plugin_config: &str, workers: u32) -> (Hop, Collector) {
    let (example, listener, admin) = shape.example();
    let echo = EchoServer::start();
    let collector = Collector::start();
    let collector_cluster = (shape != Shape::NoProvider).then_some(&collector);
    let b = example_builder(
        example,
        (listener, 0),
        admin,
        &echo,
        collector_cluster,
        Some(plugin_config),
    );
    let envoy = b
        .replace(
            "random_sampling: {value: 1}",
            format!("random_sampling: {{value: {sampling}}}"),
        )
        .concurrency(workers)
        .start()
        .unwrap_or_else(|e| panic!("{example}: {e}"));
    (Hop::new(envoy, echo), collector)
}

/// A caller's own trace id, unique per test, client and round.
fn own_trace(tag: u32, client: u32, round: u32) -> String {
    format!("{:08x}{tag:08x}{client:08x}{round:08x}", std::process::id())
}

/// Four kinds of caller, by client: none; B3 only; B3 and W3C of the same trace; W3C only.
fn caller_headers(tag: u32) -> impl Fn(u32, u32) -> Vec<(String, String)> + Sync {
    move |client, round| {
        let t = own_trace(tag, client, round);
        let b3 = [
            ("x-b3-traceid".to_string(), t.clone()),
            ("x-b3-spanid".to_string(), S.to_string()),
            ("x-b3-sampled".to_string(), "1".to_string()),
        ];
        let tp = ("traceparent".to_string(), format!("00-{t}-{S}-01"));
        match client % 4 {
            0 => vec![],
            1 => b3.to_vec(),
            2 => {
                let mut h = b3.to_vec();
                h.push(tp);
                h
            }
            _ => vec![tp],
        }
    }
}

/// The trace ids of the valid contexts the upstream received, as OpenTelemetry's propagators read
/// them (each format on its own).
fn traces_upstream(e: &Extraction) -> BTreeSet<String> {
    e.formats()
        .into_iter()
        .filter_map(|(_, present, ctx)| ctx.filter(|c| present && c.is_valid))
        .map(|c| c.trace_id.clone())
        .collect()
}

/// What one wave showed: requests checked, callers (with a context of their own) told, requests
/// that went on with a context, and requests told.
#[derive(Debug, Default)]
struct Seen {
    requests: usize,
    told: usize,
    with_context: usize,
}

/// Every request of `wave`: at most one trace upstream; a told id is that trace, and (beside a
/// tracer that reports it: a sampled context at 100 %) one the collector holds. (At 1 % Envoy
/// 1.39+'s OpenTelemetry tracer reports no span for an incoming sampled `traceparent` Envoy did
/// not sample: the id is still the trace the request went on in.)
fn check_wave(
    hop: &Hop,
    collector: &Collector,
    shape: Shape,
    sampling: u32,
    wave: &[WaveRequest],
) -> Seen {
    let ups = hop.echo.requests();
    let upstream: Vec<_> = wave
        .iter()
        .map(|r| {
            ups.iter()
                .find(|u| u.path == r.path)
                .unwrap_or_else(|| panic!("{} never reached the upstream", r.path))
        })
        .collect();
    let extractions = oracle::extract_batch(
        &upstream
            .iter()
            .map(|u| u.headers.clone())
            .collect::<Vec<_>>(),
    );
    let mut seen = Seen::default();
    for ((r, up), e) in wave.iter().zip(&upstream).zip(&extractions) {
        let what = format!("{shape:?} {}: sent {:?}", r.path, r.headers);
        let traces = traces_upstream(e);
        assert!(
            traces.len() <= 1,
            "{what}: two traces upstream {traces:?}: {up:?}"
        );
        let told = r.response.headers_named("x-trace-id");
        assert!(told.len() <= 1, "{what}: {told:?}");
        seen.requests += 1;
        seen.with_context += usize::from(!traces.is_empty());
        let Some(t) = told.first() else { continue };
        seen.told += 1;
        assert!(
            traces.contains(t),
            "{what}: told {t}, the upstream carries {traces:?}: {up:?}"
        );
        let sampled = e.continued().is_some_and(|c| c.sampled);
        if shape != Shape::NoProvider && sampled && (sampling == 100 || shape == Shape::Zipkin) {
            assert!(
                !collector
                    .wait_for_trace(t, 1, Duration::from_secs(10))
                    .is_empty(),
                "{what}: told {t}, which the collector does not hold"
            );
        }
    }
    seen
}

/// The issue's scenario: every rolling deploy starts sidecars straight into traffic.
#[test]
fn a_starting_sidecar_never_splits_a_trace_nor_tells_a_wrong_id() {
    for shape in Shape::ALL {
        for (name, config) in configs() {
            for sampling in [1, 100] {
                let (hop, collector) = istio_hop(shape, sampling, &config, 2);
                let tag = sampling * 10 + shape as u32;
                // No warm-up: the first 40 requests arrive at once, on both workers.
                let burst = concurrent_wave(hop.port, "burst", 40, 1, caller_headers(tag));
                let first = check_wave(&hop, &collector, shape, sampling, &burst);
                hop.envoy
                    .wait_for_log(
                        &format!("this hop: {} ", shape.shows()),
                        Duration::from_secs(10),
                    )
                    .unwrap_or_else(|e| panic!("{shape:?} {name}: {e}"));
                let later = concurrent_wave(hop.port, "later", 40, 2, caller_headers(tag + 1000));
                let then = check_wave(&hop, &collector, shape, sampling, &later);
                assert_every_worker_served(&hop.envoy, 2);
                // Once known: on a hop with no tracer every request goes on with a context and
                // is told it; beside a tracer, every caller whose context the tracer joins is told
                // (B3 beside Zipkin, W3C beside OpenTelemetry, both formats beside either).
                let joined = |client: u32| match shape {
                    Shape::NoProvider => true,
                    Shape::Zipkin => matches!(client % 4, 1 | 2),
                    Shape::OpenTelemetry => matches!(client % 4, 2 | 3),
                };
                for r in &later {
                    let told = r.response.header("x-trace-id");
                    if joined(r.client) {
                        let want = match r.client % 4 {
                            0 => told.clone().expect("a new trace, told"),
                            _ => own_trace(tag + 1000, r.client, r.round),
                        };
                        assert_eq!(told, Some(want), "{shape:?} {name} {sampling}%: {}", r.path);
                    }
                }
                if shape == Shape::NoProvider {
                    assert_eq!(then.with_context, then.requests, "{shape:?} {name}");
                }
                eprintln!(
                    "{shape:?}, {name}, {sampling} %: first 40 at once: {} told, {} with a context upstream; later: {} of {} told",
                    first.told, first.with_context, then.told, then.requests
                );
            }
        }
    }
}

/// Envoy's Datadog tracer (Istio's `datadog` provider): it writes `x-datadog-*` and a
/// `traceparent` of the same trace, and ignores B3. From a burst with no warm-up on: no request
/// leaves with a B3 context beside the tracer's, no caller is told a trace other than the one
/// upstream, and the hop is learnt as Datadog.
#[test]
fn beside_datadog_no_request_carries_two_traces() {
    let (example, listener, admin) = Shape::Zipkin.example();
    let echo = EchoServer::start();
    let collector = Collector::start();
    let zipkin_provider = "              name: envoy.tracers.zipkin
              typed_config:
                \"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: /api/v2/spans
                collector_endpoint_version: HTTP_JSON
                collector_hostname: zipkin.istio-system.svc.cluster.local
                trace_id_128bit: true
                shared_span_context: false
                trace_context_option: USE_B3
";
    let datadog_provider = "              name: envoy.tracers.datadog
              typed_config:
                \"@type\": type.googleapis.com/envoy.config.trace.v3.DatadogConfig
                collector_cluster: zipkin
                service_name: backend.default
";
    let envoy = example_builder(
        example,
        (listener, 0),
        admin,
        &echo,
        Some(&collector),
        Some("{}"),
    )
    .replace(zipkin_provider, datadog_provider.to_string())
    .replace(
        "random_sampling: {value: 1}",
        "random_sampling: {value: 100}".to_string(),
    )
    .concurrency(2)
    .start()
    .expect("Envoy with the Datadog tracer");
    let hop = Hop::new(envoy, echo);
    let burst = concurrent_wave(hop.port, "burst", 40, 1, caller_headers(7));
    let first = check_wave(&hop, &collector, Shape::NoProvider, 100, &burst);
    hop.envoy
        .wait_for_log("this hop: datadog ", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let later = concurrent_wave(hop.port, "later", 40, 1, caller_headers(8));
    let then = check_wave(&hop, &collector, Shape::NoProvider, 100, &later);
    for r in &later {
        let up = hop
            .echo
            .requests()
            .into_iter()
            .find(|u| u.path == r.path)
            .expect("upstream");
        assert_eq!(up.header("x-b3-traceid"), None, "{up:?}");
        assert!(up.header("x-datadog-trace-id").is_some(), "{up:?}");
        // W3C callers are joined, and told.
        if r.client % 4 >= 2 {
            let want = own_trace(8, r.client, r.round);
            assert_eq!(r.response.header("x-trace-id"), Some(want), "{}", r.path);
        }
    }
    eprintln!(
        "Datadog: first 40 at once: {} told; later: {} of {} told",
        first.told, then.told, then.requests
    );
}

/// Sampling follows the mesh: on Istio's sidecar with no tracer provider, a new trace is sampled
/// exactly where Envoy's connection manager marked the request id (`random_sampling`), so the
/// share is the operator's rate; a trusted caller's `x-client-trace-id` forces it.
#[test]
fn new_traces_are_sampled_at_the_meshs_rate() {
    const N: u32 = 2000;
    for (name, config) in configs() {
        for (rate, low, high) in [(1u32, 1usize, 45usize), (25, 400, 600)] {
            let (hop, _collector) = istio_hop(Shape::NoProvider, rate, &config, 2);
            let wave = concurrent_wave(hop.port, "share", 20, N / 20, |_, _| vec![]);
            let ups = hop.echo.requests();
            let upstream: Vec<_> = wave
                .iter()
                .filter_map(|r| ups.iter().find(|u| u.path == r.path))
                .collect();
            assert_eq!(upstream.len(), wave.len());
            let extractions = oracle::extract_batch(
                &upstream
                    .iter()
                    .map(|u| u.headers.clone())
                    .collect::<Vec<_>>(),
            );
            let (mut with_context, mut sampled) = (0, 0);
            for (up, e) in upstream.iter().zip(&extractions) {
                let Some(c) = e.continued() else { continue };
                with_context += 1;
                let mark = up
                    .header("x-request-id")
                    .and_then(|id| id.as_bytes().get(14).copied());
                let envoy_traced = matches!(mark, Some(b'9' | b'a' | b'b'));
                assert_eq!(c.sampled, envoy_traced, "{name} {rate}%: {up:?}");
                sampled += usize::from(c.sampled);
            }
            // The first requests, while the hop was not known yet, went on without one.
            assert!(
                with_context >= N as usize - 40,
                "{name} {rate}%: {with_context}"
            );
            assert!(
                (low..=high).contains(&sampled),
                "{name} {rate}%: {sampled} of {with_context} sampled"
            );
            eprintln!("{name}, {rate} %: {sampled} of {with_context} new traces sampled");
            // A trusted caller asks for a trace (Envoy marks the request id "client").
            for i in 0..10 {
                let r = hop.get("/forced", &[("x-client-trace-id", &format!("forced-{i}"))]);
                assert_eq!(r.status, 200);
                let up = hop.upstream();
                assert_eq!(up.header("x-b3-sampled"), Some("1"), "{name}: {up:?}");
                assert!(up.header("traceparent").is_some_and(|t| t.ends_with("-03")));
            }
        }
    }
}

/// The shipped configuration where Istio runs no tracer provider (its default since 1.22): once
/// a request has shown the hop, a caller's valid context reaches the app, and plain requests get
/// one; before, it removed the caller's context (it said "tracer": "envoy").
#[test]
fn the_shipped_configuration_keeps_callers_contexts_where_no_provider_runs() {
    let (hop, _collector) = istio_hop(Shape::NoProvider, 1, &shipped_plugin_config(), 1);
    hop.learn("no tracer");
    let trace = "463ac35c9f6413ad48485a3953bb6124";
    let r = hop.get(
        "/",
        &[
            ("x-b3-traceid", trace),
            ("x-b3-spanid", S),
            ("x-b3-sampled", "1"),
        ],
    );
    let up = hop.upstream();
    assert_eq!(up.header("x-b3-traceid"), Some(trace), "{up:?}");
    assert_eq!(
        up.header("traceparent"),
        Some(format!("00-{trace}-{S}-01").as_str())
    );
    assert_eq!(r.header("x-trace-id").as_deref(), Some(trace));
    hop.get("/", &[]);
    assert_valid_context(&hop.upstream());
}

/// A request whose `x-trace-id` comes back from upstream: kept where it is a trace id (a later
/// hop's), replaced where it is not one; at an egress (`outputs: []`) always replaced.
#[test]
fn an_upstream_x_trace_id_is_never_passed_on_when_it_is_not_this_trace() {
    let with_upstream_id = |value: &str, config: &str| {
        let echo = EchoServer::start();
        let envoy = plain_builder(&echo, config)
            .replace(
                "                route: {cluster: echo}",
                format!(
                    "                route: {{cluster: echo}}\n                response_headers_to_add: [{{header: {{key: x-trace-id, value: \"{value}\"}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}]"
                ),
            )
            .start()
            .expect("Envoy");
        let hop = Hop::new(envoy, echo);
        let r = hop.get("/", &[]);
        (r.headers_named("x-trace-id"), hop.upstream())
    };
    let later_hop = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (told, _) = with_upstream_id(later_hop, "{}");
    assert_eq!(told, vec![later_hop], "a later hop's trace id is kept");
    let (told, up) = with_upstream_id("req-42/abc", "{}");
    let (ours, _) = assert_valid_context(&up);
    assert_eq!(told, vec![ours], "not a trace id: replaced by this trace's");
    let (told, up) = with_upstream_id(later_hop, r#"{"outputs": []}"#);
    assert_eq!(up.header("x-b3-traceid"), None);
    assert_eq!(told.len(), 1);
    assert_ne!(
        told[0], later_hop,
        "an egress: another system's id is never passed on"
    );
}

/// An untrusted caller cannot make the next hop trace its request: an edge with
/// `trust_incoming: none` and deferred sampling in front of an Istio sidecar whose Zipkin tracer
/// samples 0 %. The caller's `x-client-trace-id` and the trace mark in the request id it sent
/// (Envoy keeps a caller's request id where it does not use the remote address) would have made
/// that sidecar trace every request.
#[test]
fn an_untrusted_caller_cannot_force_the_next_hop_to_trace() {
    let (sidecar, collector) = istio_hop(Shape::Zipkin, 0, "{}", 1);
    let edge = builder(
        "envoy.yaml",
        10000,
        8080,
        0,
        sidecar.port,
        r#"{"trust_incoming": "none", "new_trace_sampling": "defer"}"#,
    )
    .start()
    .expect("edge Envoy");
    let marked = "83733a38-4bd4-9cc2-8e5b-1d5f6b7a8c9d";
    let mut told = Vec::new();
    for i in 0..10 {
        let r = http::request(
            edge.port(),
            "GET",
            &format!("/forced/{i}"),
            &[
                (b"x-client-trace-id", format!("client-{i}").as_bytes()),
                (b"x-envoy-force-trace", b"true"),
                (b"x-request-id", marked.as_bytes()),
                (b"x-b3-sampled", b"1"),
            ],
        )
        .expect("request");
        assert_eq!(r.status, 200);
        let up = sidecar.echo.requests().last().cloned().expect("upstream");
        assert_eq!(up.header("x-client-trace-id"), None, "{up:?}");
        assert_eq!(up.header("x-envoy-force-trace"), None, "{up:?}");
        let mark = up
            .header("x-request-id")
            .and_then(|id| id.as_bytes().get(14).copied());
        assert_eq!(mark, Some(b'4'), "not traced: {up:?}");
        told.push(r.header("x-trace-id"));
    }
    // Nothing was sampled at the sidecar: its tracer reported no span at all.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(collector.spans().len(), 0, "{:?}", collector.spans());
    eprintln!("told: {told:?}");
}

/// With export on, before the hop is known, no span is reported (a tracer there would report
/// the request too, and the filter wrote no id of its own); after, every span has an id of its
/// own, never the caller's.
#[test]
fn an_exported_span_always_has_its_own_span_id() {
    let echo = EchoServer::start();
    let collector = Collector::start();
    let config = r#"{"tracer": "auto", "export": {"cluster": "zipkin", "flush_interval_ms": 100}}"#;
    let envoy = plain_builder(&echo, config)
        .replace(
            "port_value: 9411}",
            format!("port_value: {}}}", collector.port()),
        )
        .concurrency(2)
        .start()
        .expect("Envoy");
    let traced = "83733a38-4bd4-9cc2-8e5b-1d5f6b7a8c9d";
    let headers = |_: u32, _: u32| {
        vec![
            ("x-request-id".to_string(), traced.to_string()),
            (
                "x-b3-traceid".to_string(),
                "463ac35c9f6413ad48485a3953bb6124".to_string(),
            ),
            ("x-b3-spanid".to_string(), S.to_string()),
            ("x-b3-sampled".to_string(), "1".to_string()),
            (
                "traceparent".to_string(),
                format!("00-463ac35c9f6413ad48485a3953bb6124-{S}-01"),
            ),
        ]
    };
    concurrent_wave(envoy.port(), "burst", 20, 1, headers);
    envoy
        .wait_for_log("this hop: no tracer ", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    concurrent_wave(envoy.port(), "later", 10, 1, headers);
    let spans = collector.wait_for_trace(
        "463ac35c9f6413ad48485a3953bb6124",
        10,
        Duration::from_secs(10),
    );
    assert!(spans.len() >= 10, "{spans:?}");
    for s in &spans {
        assert_ne!(s.id, S, "a span with the caller's id: {s:?}");
        assert_eq!(s.parent_id.as_deref(), Some(S), "{s:?}");
    }
}
