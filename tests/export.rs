//! Issue "Own the trace where Envoy has no tracer": the filter reports its own span per request
//! on a hop without Envoy's tracer, as the parent of the next hop's span.

mod common;
use common::*;
use std::time::{Duration, Instant};
use trace_inject::fixtures::{S, T32};

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
    let a = edge(
        0,
        b.port,
        b.collector.port(),
        r#"{"cluster": "zipkin", "flush_interval_ms": 100}"#,
    );
    let a_port = a.port();
    for incoming in [None, Some((T32, S))] {
        let headers = sampled_b3(incoming);
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
    let a = edge(
        0,
        echo.port(),
        collector.port(),
        r#"{"cluster": "zipkin", "flush_interval_ms": 100}"#,
    );
    let port = a.port();
    for headers in [
        vec![(&b"b3"[..], &b"0"[..])],
        vec![
            (b"x-b3-traceid", T32.as_bytes()),
            (b"x-b3-spanid", S.as_bytes()),
            (b"x-b3-sampled", b"0"),
        ],
    ] {
        let before = echo.received();
        let r = http::request(port, "GET", "/", &headers).unwrap();
        assert_eq!(r.status, 200);
        assert!(echo.received() > before, "reached the upstream");
        let up = echo.requests().pop().unwrap();
        assert_eq!(up.header("x-b3-sampled"), Some("0"), "the decision goes on");
    }
    // Positive signal: a sampled request after them is exported (spans leave in order, one
    // flush every 100 ms), then nothing else is in the collector.
    let r = http::request(port, "GET", "/", &[(b"x-b3-sampled", b"1")]).unwrap();
    let sampled = r.header("x-trace-id").expect("x-trace-id");
    collector.wait_for_trace(&sampled, 1, Duration::from_secs(10));
    let spans = collector.spans();
    assert!(!spans.is_empty(), "the sampled request's span arrived");
    assert!(
        spans.iter().all(|s| s.trace_id == sampled),
        "only the sampled request exported: {spans:?}"
    );
    assert_stat(&a, "wasmcustom.trace_inject.export.spans_sent", 1);
}

/// A collector that accepts connections and reads, but never answers: the worst case for a
/// request path that would wait on the export (a refused port fails at once).
struct StalledCollector {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl StalledCollector {
    fn start() -> StalledCollector {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let n = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in l.incoming().flatten() {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut c2 = c.try_clone().unwrap();
                // Read (and discard) so the sender's writes complete; never write back.
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while matches!(std::io::Read::read(&mut c2, &mut buf), Ok(n) if n > 0) {}
                });
                held.push(c);
            }
        });
        StalledCollector { port, accepted }
    }
}

#[test]
fn collector_stalled_requests_still_fast_and_losses_counted() {
    let echo = EchoServer::start();
    let stalled = StalledCollector::start();
    let a = edge(
        0,
        echo.port(),
        stalled.port,
        r#"{"cluster": "zipkin", "flush_interval_ms": 50, "buffer_limit": 5, "batch_size": 2, "timeout_ms": 2000}"#,
    );
    let port = a.port();
    // The first post is under way (accepted, never answered) before the timed requests.
    http::request(port, "GET", "/", &[]).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || stalled
            .accepted
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0),
        "Envoy connected to the stalled collector"
    );
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let r = http::request(port, "GET", "/", &[]).unwrap();
        times.push(t.elapsed());
        assert_eq!(r.status, 200);
        assert!(r.header("x-trace-id").is_some());
    }
    times.sort();
    let median = times[times.len() / 2];
    // The post waits up to its 2 s timeout: a request that waited on it would take that long.
    // A loaded 2-core machine may delay a few requests: the median is the measure.
    assert!(
        median < Duration::from_millis(500),
        "requests never wait for the export: median {median:?}, slowest {:?}",
        times.last()
    );
    // The buffer holds 5 spans, a batch 2, and a post takes 2 s to fail: of 51 spans, most are
    // dropped for want of room, and the posts that time out are counted as failed.
    let counted = wait_until(Duration::from_secs(15), || {
        a.stat("wasmcustom.trace_inject.export.spans_failed")
            .unwrap_or(0)
            > 0
    });
    assert!(counted, "failed posts counted");
    let stat = |n: &str| {
        a.stat(&format!("wasmcustom.trace_inject.export.{n}"))
            .unwrap_or(0)
    };
    let (sent, failed, dropped) = (
        stat("spans_sent"),
        stat("spans_failed"),
        stat("spans_dropped"),
    );
    assert_eq!(sent, 0);
    assert!(
        dropped > 0,
        "a full buffer drops spans, counted: dropped {dropped}"
    );
    assert!(
        failed + dropped <= 51 && failed > 0,
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
    // Five more requests after the stop, all counted: nothing more is sent.
    for _ in 0..5 {
        assert_eq!(hop.get("/", &[]).status, 200);
    }
    hop.wait_counted(10);
    assert!(
        settled_stat(&hop.envoy, "wasmcustom.trace_inject.export.spans_sent") <= 1,
        "at most the first request's span before detection"
    );
}
