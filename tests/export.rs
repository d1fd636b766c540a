//! Issue "Own the trace where Envoy has no tracer": the filter reports its own span per request
//! on a hop without Envoy's tracer, as the parent of the next hop's span.

mod common;
use common::*;
use std::time::{Duration, Instant};

const T32: &str = "463ac35c9f6413ad48485a3953bb6124";
const S: &str = "a2fb4a1d1a96d312";

/// Envoy A: examples/envoy.yaml, no tracer, the filter exporting to `collector_port`, its
/// upstream at `upstream_port`.
fn edge(port: u16, upstream_port: u16, collector_port: u16, export: &str) -> Envoy {
    let config = format!(
        r#"{{"workload": {{"service": "edge", "namespace": "gateways"}}, "export": {export}}}"#
    );
    builder("envoy.yaml", 10000, 8080, port, upstream_port, &config)
        .replace(
            "port_value: 9411}",
            format!("port_value: {collector_port}}}"),
        )
        .start()
        .unwrap_or_else(|e| panic!("Envoy A: {e}"))
}

#[test]
fn two_hop_chain_is_a_two_level_trace() {
    let b = sidecar_hop(None, |b| b);
    let a_port = free_port();
    let a = edge(
        a_port,
        b.port,
        b.collector.port(),
        r#"{"cluster": "zipkin", "flush_interval_ms": 100}"#,
    );
    for incoming in [None, Some((T32, S))] {
        let headers: Vec<(&[u8], &[u8])> = match incoming {
            None => vec![],
            Some((t, s)) => vec![
                (b"x-b3-traceid", t.as_bytes()),
                (b"x-b3-spanid", s.as_bytes()),
                (b"x-b3-sampled", b"1"),
            ],
        };
        let r = http::request(a_port, "GET", "/orders?id=7", &headers).unwrap();
        assert_eq!(r.status, 200);
        let trace = r.header("x-trace-id").expect("x-trace-id");
        let spans = b
            .collector
            .wait_for_trace(&trace, 2, Duration::from_secs(15));
        assert_eq!(spans.len(), 2, "A's span and B's span: {spans:?}");
        let a_span = spans
            .iter()
            .find(|s| s.service_name() == Some("edge"))
            .expect("A's span (the filter's)");
        let b_span = spans
            .iter()
            .find(|s| s.service_name() == Some("backend.default"))
            .expect("B's span (Envoy's)");
        assert_eq!(
            b_span.parent_id.as_deref(),
            Some(a_span.id.as_str()),
            "B's span is a child of A's"
        );
        match incoming {
            None => assert_eq!(a_span.parent_id, None, "A's span is the root"),
            Some((_, s)) => assert_eq!(
                a_span.parent_id.as_deref(),
                Some(s),
                "A's span is a child of the caller's"
            ),
        }
        assert_eq!(a_span.kind.as_deref(), Some("SERVER"));
        for (tag, want) in [
            ("http.method", "GET"),
            ("http.path", "/orders"),
            ("http.status_code", "200"),
            ("service", "edge"),
            ("namespace", "gateways"),
            ("upstream_cluster", "echo"),
        ] {
            assert_eq!(a_span.tag(tag), Some(want), "A's span tag {tag}");
        }
        assert!(a_span.tag("error").is_none());
        assert!(a_span.duration.unwrap_or(0) >= 1);
        // What B's app received: B's own span, whose parent is A's.
        let up = b.upstream();
        assert_eq!(up.header("x-b3-parentspanid"), b_span.parent_id.as_deref());
    }
    assert_stat(&a, "wasmcustom.trace_inject.export.spans_sent", 2);
    assert_eq!(
        a.stat("wasmcustom.trace_inject.export.spans_failed"),
        Some(0)
    );
}

#[test]
fn not_sampled_is_propagated_but_not_reported() {
    let collector = Collector::start();
    let echo = EchoServer::start();
    let port = free_port();
    let a = edge(
        port,
        echo.port(),
        collector.port(),
        r#"{"cluster": "zipkin", "flush_interval_ms": 100}"#,
    );
    for headers in [
        vec![(&b"b3"[..], &b"0"[..])],
        vec![
            (b"x-b3-traceid", T32.as_bytes()),
            (b"x-b3-spanid", S.as_bytes()),
            (b"x-b3-sampled", b"0"),
        ],
    ] {
        let r = http::request(port, "GET", "/", &headers).unwrap();
        assert_eq!(r.status, 200);
        let up = echo.requests().pop().unwrap();
        assert_eq!(up.header("x-b3-sampled"), Some("0"), "the decision goes on");
    }
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        collector.spans().is_empty(),
        "nothing exported: {:?}",
        collector.spans()
    );
    assert_eq!(
        settled_stat(&a, "wasmcustom.trace_inject.export.spans_sent"),
        0
    );
}

#[test]
fn collector_down_requests_still_fast_and_losses_counted() {
    let echo = EchoServer::start();
    let dead = free_port(); // nothing listens there
    let port = free_port();
    let a = edge(
        port,
        echo.port(),
        dead,
        r#"{"cluster": "zipkin", "flush_interval_ms": 50, "buffer_limit": 5, "batch_size": 2, "timeout_ms": 200}"#,
    );
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        let r = http::request(port, "GET", "/", &[]).unwrap();
        slowest = slowest.max(t.elapsed());
        assert_eq!(r.status, 200);
        assert!(r.header("x-trace-id").is_some());
    }
    assert!(
        slowest < Duration::from_millis(500),
        "requests never wait for the export: {slowest:?}"
    );
    let counted = wait_until(Duration::from_secs(10), || {
        a.stat("wasmcustom.trace_inject.export.spans_failed")
            .unwrap_or(0)
            > 0
    });
    assert!(counted, "failed posts counted");
    let sent = a.stat("wasmcustom.trace_inject.export.spans_sent").unwrap();
    let failed = a
        .stat("wasmcustom.trace_inject.export.spans_failed")
        .unwrap();
    let dropped = a
        .stat("wasmcustom.trace_inject.export.spans_dropped")
        .unwrap();
    assert_eq!(sent, 0);
    assert!(
        failed + dropped <= 50 && failed > 0,
        "failed {failed}, dropped {dropped}"
    );
}

#[test]
fn beside_envoys_tracer_export_stops_with_a_warning() {
    // Misconfigured: export on a hop where Envoy's tracer runs (tracer: auto detects it).
    let hop = sidecar_hop(
        Some(r#"{"export": {"cluster": "zipkin", "flush_interval_ms": 100}}"#),
        |b| b,
    );
    for _ in 0..5 {
        assert_eq!(hop.get("/", &[]).status, 200);
    }
    hop.assert_counter("export.disabled", 1);
    hop.assert_counter("tracer_detected", 1);
    hop.envoy
        .wait_for_log(
            "this filter stops exporting its own",
            Duration::from_secs(5),
        )
        .expect("one warning");
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        settled_stat(&hop.envoy, "wasmcustom.trace_inject.export.spans_sent") <= 1,
        "at most the first request's span before detection"
    );
}
