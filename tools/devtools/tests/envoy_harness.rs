//! The Envoy harness against the real Envoy (`make envoy` installs it; a missing Envoy fails
//! these tests, it does not skip them), and the echo, the collector and the client with it.

use std::time::{Duration, Instant};
use trace_inject_devtools::envoy::{free_port, Envoy};
use trace_inject_devtools::{request, tree, Collector, EchoServer};

const DIRECT: &str = "tests/direct_response.yaml";
const TRACED: &str = "tests/traced_proxy.yaml";
const OTEL: &str = "tests/otel_proxy.yaml";

fn direct(listener: u16, admin: u16) -> Vec<(&'static str, String)> {
    vec![
        ("port_value: 10000", format!("port_value: {listener}")),
        ("port_value: 9901", format!("port_value: {admin}")),
    ]
}

#[test]
fn starts_serves_reports_stats_and_dies_on_drop() {
    let (listener, admin) = (free_port(), free_port());
    let envoy = Envoy::start(DIRECT, &direct(listener, admin)).unwrap();
    assert_eq!(envoy.admin_port(), admin);
    assert!(envoy.is_running());
    let r = request(listener, "GET", "/", &[(b"x-bin", b"\xff")]).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello from envoy\n"));
    assert_eq!(envoy.stat("http.harness.downstream_rq_2xx"), Some(1));
    assert_eq!(envoy.stat("server.live"), Some(1));
    assert_eq!(envoy.stat("no.such.stat"), None);
    assert!(envoy
        .stats()
        .contains("http.harness.downstream_rq_total: 1"));
    // Ready can come before the log's next flush (50 ms): wait for it.
    envoy
        .wait_for_log("starting main dispatch loop", Duration::from_secs(5))
        .unwrap();

    let pid = envoy.pid();
    let dir = envoy.config_path().parent().unwrap().to_path_buf();
    let shm = format!(
        "/dev/shm/envoy_shared_memory_{}",
        u64::from(envoy.base_id()) * 10
    );
    assert!(
        std::path::Path::new(&shm).exists(),
        "{shm}: base id not used?"
    );
    drop(envoy);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "Envoy {pid} still runs"
    );
    assert!(
        request(listener, "GET", "/", &[]).is_err(),
        "listener still answers"
    );
    assert!(
        !dir.exists() && !std::path::Path::new(&shm).exists(),
        "files left behind"
    );
}

#[test]
fn log_level_extra_args_and_quick_log_flushing() {
    let (listener, admin) = (free_port(), free_port());
    let envoy = Envoy::builder(DIRECT)
        .replace("port_value: 10000", format!("port_value: {listener}"))
        .replace("port_value: 9901", format!("port_value: {admin}"))
        .log_level("warning")
        .extra_args(["--component-log-level", "http:debug"])
        .concurrency(2)
        .start()
        .unwrap();
    request(listener, "GET", "/", &[(b"x-harness-marker", b"m1")]).unwrap();
    // Envoy flushes its log file every 10 s by default; the harness makes it 50 ms.
    let t0 = Instant::now();
    let log = envoy
        .wait_for_log("x-harness-marker", Duration::from_secs(5))
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(!log.contains("[info]"), "-l warning not applied");
    assert!(envoy
        .wait_for_log("never-logged", Duration::from_millis(100))
        .is_err());
}

#[test]
fn concurrent_envoys_get_their_own_base_ids() {
    let a = Envoy::start(DIRECT, &direct(free_port(), free_port())).unwrap();
    let b = Envoy::start(DIRECT, &direct(free_port(), free_port())).unwrap();
    assert_ne!(a.base_id(), b.base_id());
    assert!(a.is_running() && b.is_running());
}

#[test]
fn a_missing_replacement_fails_loudly() {
    let e = Envoy::start(DIRECT, &[("port_value: 12345", "port_value: 1".into())])
        .err()
        .expect("started although the replacement does not occur");
    assert!(e.contains("port_value: 12345"), "{e}");
    assert!(Envoy::start("tests/no-such.yaml", &[]).is_err());
}

#[test]
fn a_bad_config_fails_with_envoys_own_words() {
    // An unknown field: Envoy exits at once; the error carries its log.
    let e = Envoy::start(
        DIRECT,
        &[
            ("port_value: 10000", format!("port_value: {}", free_port())),
            (
                "port_value: 9901",
                format!("port_value: {}, no_such_field: 1", free_port()),
            ),
        ],
    )
    .err()
    .expect("a bad config started");
    assert!(e.contains("exited"), "{e}");
    assert!(e.contains("no_such_field"), "{e}");
}

#[test]
fn a_taken_admin_port_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let t0 = Instant::now();
    let e = Envoy::start(DIRECT, &direct(free_port(), port))
        .err()
        .expect("started on a taken admin port");
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "waited for the timeout: {e}"
    );
    assert!(e.to_lowercase().contains("address already in use"), "{e}");
}

#[test]
fn real_envoy_through_echo_to_collector() {
    let echo = EchoServer::start();
    let collector = Collector::start();
    let (listener, admin) = (free_port(), free_port());
    let envoy = Envoy::builder(TRACED)
        .replace("port_value: 10000", format!("port_value: {listener}"))
        .replace("port_value: 9901", format!("port_value: {admin}"))
        .replace("ECHO_PORT", echo.port().to_string())
        .replace("ZIPKIN_PORT", collector.port().to_string())
        .flush_spans_immediately()
        .start()
        .unwrap();

    // Several requests: Envoy reuses its kept-alive upstream connection to the echo.
    for i in 0..3 {
        let r = request(
            listener,
            "GET",
            &format!("/status/20{i}?n={i}"),
            &[(b"x-harness", b"yes"), (b"x-rep", b"1"), (b"x-rep", b"2")],
        )
        .unwrap();
        assert_eq!(r.status, 200 + i);
    }
    let seen = echo.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].path, "/status/200?n=0");
    assert_eq!(seen[0].headers_named("x-rep"), ["1", "2"]);
    assert_eq!(seen[0].header("x-harness"), Some("yes"));
    let trace_id = seen[2]
        .header("x-b3-traceid")
        .expect("Envoy's tracer ran")
        .to_string();
    assert_eq!(
        envoy.stat("cluster.echo.upstream_cx_total"),
        Some(1),
        "the echo did not keep Envoy's connection alive"
    );

    // Envoy posts the spans (chunked) to the collector, each at once (not after ~5 s).
    let t0 = Instant::now();
    let spans = collector.wait_for_trace(&trace_id, 1, Duration::from_secs(15));
    assert!(t0.elapsed() < Duration::from_secs(3), "spans were batched");
    assert_eq!(spans.len(), 1, "trace {trace_id}: {:?}", collector.spans());
    let s = &spans[0];
    assert_eq!(s.service_name(), Some("harness-front"));
    assert_eq!(s.tag("harness.header"), Some("yes"));
    assert_eq!(s.tag("upstream_cluster"), Some("echo"));
    assert_eq!(s.tag("http.status_code"), Some("202"));
    assert_eq!(s.id, seen[2].header("x-b3-spanid").unwrap());
    let all = collector.wait_for_spans(3, Duration::from_secs(15));
    assert_eq!(all.len(), 3);
    // Envoy counts a report when the collector's answer arrives, which is after the collector
    // stored its spans: wait for all three reports (one span each) before reading the others.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sent = loop {
        let sent = envoy.stat("tracing.zipkin.reports_sent").unwrap_or(0);
        if sent >= 3 || Instant::now() > deadline {
            break sent;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(sent, 3, "reports_sent");
    assert_eq!(envoy.stat("tracing.zipkin.reports_failed"), Some(0));
    assert_eq!(envoy.stat("tracing.zipkin.reports_dropped"), Some(0));

    // The API and the tree view read them back.
    let r = request(collector.port(), "GET", "/api/v2/services", &[]).unwrap();
    assert_eq!(r.json(), serde_json::json!(["harness-front"]));
    let r = request(
        collector.port(),
        "GET",
        &format!("/api/v2/trace/{trace_id}"),
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let text = tree::render_trace(&spans, false);
    assert!(
        text.starts_with(&format!("trace {trace_id} · 1 span · ")),
        "{text}"
    );
    assert!(text.contains("  harness.header=yes"), "{text}");
}

#[test]
fn real_envoy_opentelemetry_tracer_to_the_otlp_collector() {
    let echo = EchoServer::start();
    let collector = Collector::start();
    let (listener, admin) = (free_port(), free_port());
    let envoy = Envoy::builder(OTEL)
        .replace("port_value: 10000", format!("port_value: {listener}"))
        .replace("port_value: 9901", format!("port_value: {admin}"))
        .replace("ECHO_PORT", echo.port().to_string())
        .replace("OTLP_PORT", collector.port().to_string())
        .flush_spans_immediately()
        .start()
        .unwrap();

    // One request joining a W3C context, one starting a trace.
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = request(
        listener,
        "GET",
        "/",
        &[(b"traceparent", tp.as_bytes()), (b"x-harness", b"w3c")],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = request(listener, "GET", "/status/201", &[]).unwrap();
    assert_eq!(r.status, 201);
    let seen = echo.requests();
    let upstream: Vec<&str> = seen
        .iter()
        .map(|q| {
            q.header("traceparent")
                .expect("the tracer wrote traceparent")
        })
        .collect();

    // The tracer posts OTLP protobuf, chunked; each span at once (min_flush_spans 1).
    let t0 = Instant::now();
    let joined = collector.wait_for_trace(
        "4bf92f3577b34da6a3ce929d0e0e4736",
        1,
        Duration::from_secs(15),
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "spans were batched");
    assert_eq!(joined.len(), 1, "{:?}", collector.spans());
    let s = &joined[0];
    assert_eq!(s.service_name(), Some("harness-otel"));
    assert_eq!(s.kind.as_deref(), Some("SERVER"));
    assert_eq!(s.parent_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(s.tag("harness.header"), Some("w3c"));
    assert_eq!(s.tag("upstream_cluster"), Some("echo"));
    assert_eq!(upstream[0], format!("00-{}-{}-01", s.trace_id, s.id));

    let new_trace = upstream[1].split('-').nth(1).unwrap();
    let fresh = collector.wait_for_trace(new_trace, 1, Duration::from_secs(15));
    assert_eq!(fresh.len(), 1, "{:?}", collector.spans());
    assert_eq!(fresh[0].tag("http.status_code"), Some("201"));
    assert_eq!(fresh[0].parent_id, None);
    let stats = envoy.stats();
    let sent = envoy.stat("tracing.opentelemetry.spans_sent").unwrap_or(0);
    assert!(sent >= 2, "{stats}");

    // The Zipkin API and the tree view show OTLP spans like Zipkin ones.
    let r = request(collector.port(), "GET", "/api/v2/services", &[]).unwrap();
    assert_eq!(r.json(), serde_json::json!(["harness-otel"]));
    let text = tree::render_trace(&joined, false);
    assert!(
        text.starts_with("trace 4bf92f3577b34da6a3ce929d0e0e4736 · 1 span · "),
        "{text}"
    );
    assert!(text.contains("  harness.header=w3c"), "{text}");
}
